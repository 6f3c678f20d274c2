//! The demo `make run` serves: a small catalog, a user with points, and curl lines to paste.

use domain::model::NewProduct;
use domain::values::{Points, Price, ProductName, Stock, UserId};
use domain::Mall;

/// The demo user's id.
pub const DEMO_USER: &str = "demo";
const DEMO_BALANCE: i64 = 100_000;
const CATALOG: [(&str, i64, i64); 5] = [
    ("Americano", 4_500, 100),
    ("Cafe latte", 5_000, 50),
    ("Croissant", 3_800, 30),
    ("Cheesecake", 6_500, 10),
    ("Limited edition mug", 25_000, 3),
];

/// Adds the demo catalog and user through the use cases, unless the catalog already has
/// products.
///
/// # Errors
/// When the store fails.
pub async fn seed(mall: &Mall) -> anyhow::Result<()> {
    if mall.catalog(0, 1).await?.total > 0 {
        tracing::info!("the catalog is not empty; demo data not added");
        return Ok(());
    }
    for (name, price, quantity) in CATALOG {
        let product = NewProduct {
            name: ProductName::parse(name)?,
            price: Price::new(price)?,
            quantity: Stock::new(quantity)?,
        };
        mall.add_product(product).await?;
    }
    let user = UserId::parse(DEMO_USER)?;
    mall.register(user.clone()).await?;
    mall.charge(user, Points::positive(DEMO_BALANCE)?, None).await?;
    Ok(())
}

/// What the demo prints once it listens.
pub fn banner(base: &str, admin_token: &str) -> String {
    let json = "-H 'Content-Type: application/json'";
    format!(
        "\n\
mall demo is serving at {base}
  user `{DEMO_USER}` has {DEMO_BALANCE} points; products 1-5 are in the catalog
  admin token: {admin_token}

Try:
  curl -s '{base}/product?limit=5'
  curl -s {base}/user/{DEMO_USER}/point
  curl -s -X PATCH {base}/user/{DEMO_USER}/charge {json} -d '{{\"amount\":1000}}'
  curl -s -X POST {base}/order/{DEMO_USER} {json} -d '[{{\"product_id\":1,\"count\":2}},{{\"product_id\":3,\"count\":1}}]'
  curl -s {base}/order/{DEMO_USER}
  curl -s -X POST {base}/order/{DEMO_USER}/pay {json} -d '[{{\"product_id\":1,\"count\":2}},{{\"product_id\":3,\"count\":1}}]'
  curl -s {base}/product/ranked
  curl -s -X POST {base}/product -H 'Authorization: Bearer {admin_token}' {json} -d '{{\"name\":\"Green tea\",\"price\":3000,\"quantity\":20}}'

Ctrl-C stops the server.
"
    )
}

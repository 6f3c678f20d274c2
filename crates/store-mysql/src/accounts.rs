//! Users and their balances: registering, charging (batched, see `charges`), reading.

use anyhow::anyhow;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::errors::{ChargeError, RegisterError};
use domain::idempotency::Remember;
use domain::model::User;
use domain::ports::UserRepository;
use domain::values::{Points, UserId};

use crate::charges::ChargeJob;
use crate::schema::users;
use crate::tx::{transaction, TxError};
use crate::MysqlStore;

#[async_trait]
impl UserRepository for MysqlStore {
    async fn register(&self, id: UserId) -> Result<User, RegisterError> {
        let key = id.to_string();
        let inserted = self
            .blocking(move |c| {
                // Retried on a deadlock: on Galera, the same id registered through another
                // node at once fails this insert's certification (and then meets its key).
                transaction::<_, anyhow::Error>(c, |c| {
                    Ok(diesel::insert_into(users::table)
                        .values((users::id.eq(&key), users::balance.eq(0)))
                        .execute(c)?)
                })
            })
            .await?;
        match inserted {
            Ok(_) => Ok(User { id, balance: Points::ZERO }),
            Err(TxError::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => {
                Err(RegisterError::AlreadyRegistered(id))
            }
            Err(error) => Err(error.into_error().context("registering a user").into()),
        }
    }

    async fn charge(
        &self,
        id: UserId,
        amount: Points,
        remember: Option<Remember>,
    ) -> Result<Points, ChargeError> {
        self.charges.call(self, ChargeJob { user: id, amount, remember }).await
    }

    async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>> {
        let balance = self.point_reads.balances.read(self, id.as_str().to_owned()).await?;
        balance.map(Points::new).transpose().map_err(|e| anyhow!("corrupt balance: {e}"))
    }
}

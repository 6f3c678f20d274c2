//! SPEC §4 configuration: every setting is an environment variable with a matching flag.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsAuth {
    /// Anyone who can reach it (as before this setting existed).
    Open,
    /// The admin token, or a JWT with the admin role (401/403, code 6, otherwise).
    Admin,
}

/// What to do; with none, serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply pending database migrations to DATABASE_URL and exit (serving applies them too).
    Migrate,
    /// Print the API description (what /openapi.json serves) and exit.
    Openapi,
}

/// Every setting of the `mall` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mall",
    version,
    about = "mall: an e-commerce order service. Run with no arguments, it serves.",
    long_about = "mall: an e-commerce order service. Users charge points, order several products \
                  at once (stock is reserved until the order form expires), pay with their \
                  points, and read the best sellers. Run with no arguments, it serves; every \
                  option can also be set by the environment variable shown."
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MALL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Serve /metrics on this address only (a second listener, e.g. an internal interface);
    /// the main address then answers 404 there. Unset: /metrics is on the main address.
    #[arg(long, env = "MALL_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// Who may read /metrics, wherever it is served: anyone who reaches it, or only callers
    /// with the admin token (or an admin JWT).
    #[arg(long, env = "MALL_METRICS_AUTH", value_enum, default_value = "open")]
    pub metrics_auth: MetricsAuth,

    /// MySQL/MariaDB URL, mysql://user:pass@host:port/db. Unset: the in-memory store.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// How long to keep trying to reach the database at start before giving up, in seconds.
    #[arg(long, env = "MALL_DB_CONNECT_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub db_connect_timeout_secs: u64,

    /// Most database connections kept open (at least 2). Default: twice the CPU cores, at
    /// least 4 — more connections than that only queue on the cores (docs/benchmarks.md).
    #[arg(long, env = "MALL_DB_POOL_SIZE",
          value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub db_pool_size: Option<u32>,

    /// How long a request waits for a free database connection before answering 503, in ms.
    #[arg(long, env = "MALL_DB_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub db_timeout_ms: u64,

    /// How long one SQL statement may run before the database stops it, in ms (at least 2 000,
    /// and below the request timeout). A statement waits for a row lock half as long, in whole
    /// seconds.
    #[arg(long, env = "MALL_DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub db_statement_timeout_ms: u64,

    /// Group commit: orders, payments and charges that arrive together share one database
    /// transaction (on/off). Off runs each alone in its own transaction, as before group commit:
    /// the naive baseline `mall-bench` measures against, many times slower on a hot row.
    #[arg(long, env = "MALL_DB_GROUP_COMMIT", default_value = "on", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub db_group_commit: bool,

    /// With group commit, how many transactions of one kind of write (orders, payments,
    /// charges), and read rounds of one kind, may be in the database at once: the next batch
    /// locks and decides while one commits. 1 (the default) runs them one after another; on a
    /// 2-core machine deeper was no faster (docs/performance.md), try it where the database
    /// has cores of its own.
    #[arg(long, env = "MALL_DB_PIPELINE", default_value_t = store_mysql::StoreOptions::PIPELINE,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub db_pipeline: u8,

    /// How long an order form waits for payment, in seconds.
    #[arg(long, env = "MALL_ORDER_TTL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=86_400 * 30))]
    pub order_ttl_secs: u32,

    /// Bearer token for the admin calls (add/edit product). Unset: admin calls answer 403.
    #[arg(long, env = "MALL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// HS256 secret (at least 32 bytes): user calls then need a JWT whose `sub` is the user.
    #[arg(
        long,
        env = "MALL_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_secret: Option<String>,

    /// RS256 or EdDSA public key, as PEM text or a file path: user calls then need a JWT.
    #[arg(long, env = "MALL_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,

    /// Required `iss` of every JWT.
    #[arg(long, env = "MALL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of every JWT.
    #[arg(long, env = "MALL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Charges, orders and payments per second one caller may make (0: no limit). The caller
    /// is the JWT's user, or the client address when the service is open.
    #[arg(long, env = "MALL_RATE_LIMIT_PER_SEC", default_value_t = 0)]
    pub rate_limit_per_sec: u32,

    /// How many such calls one caller may make in a burst (default: twice the rate).
    #[arg(long, env = "MALL_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// How long one request may take before it answers 503, in ms.
    #[arg(long, env = "MALL_REQUEST_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// Where payment events go: http://… (POSTed) or nats://host:port/<subject> (a NATS
    /// JetStream stream). Unset: events are written to the log.
    #[arg(long, env = "MALL_DATA_PLATFORM_URL")]
    pub data_platform_url: Option<String>,

    /// How long one delivery attempt to the data platform may take, in ms.
    #[arg(long, env = "MALL_DATA_PLATFORM_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=25_000))]
    pub data_platform_timeout_ms: u64,

    /// Payment events being sent to the data platform at the same moment, per relay pass (an
    /// instance runs at most two passes at once).
    #[arg(long, env = "MALL_RELAY_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub relay_concurrency: u32,

    /// How long delivered payment events are kept before they are purged, in hours.
    #[arg(long, env = "MALL_OUTBOX_RETENTION_HOURS", default_value_t = 168,
          value_parser = clap::value_parser!(u32).range(1..=24 * 366))]
    pub outbox_retention_hours: u32,

    /// The ranking's rolling window, in days.
    #[arg(long, env = "MALL_RANKING_DAYS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub ranking_days: u32,

    /// How many products the ranking lists.
    #[arg(long, env = "MALL_RANKING_SIZE", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub ranking_size: u32,

    /// Seed a demo catalog and user, make up an admin token if none is set, and print
    /// ready-to-paste curl lines (what `make run` does).
    #[arg(long, env = "MALL_DEMO")]
    pub demo: bool,

    /// Log format.
    #[arg(long, env = "MALL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Twice the CPU cores this process may use, at least 4.
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    u32::try_from(2 * cores).unwrap_or(u32::MAX).max(4)
}

impl Config {
    /// The defaults, as if run with no arguments and no environment (for tests).
    pub fn defaults() -> Self {
        Self::parse_from(["mall"])
    }

    /// Refuses settings that parse but do not work together: the limits must nest, a row-lock
    /// wait (half the statement timeout) inside the statement timeout inside the request
    /// timeout, so that a call stuck behind a lock gets a definite answer before its request
    /// gives up on it.
    ///
    /// # Errors
    /// With a message naming the settings.
    pub fn check(&self) -> anyhow::Result<()> {
        self.pool_options().check().map_err(|error| {
            error.context("MALL_DB_STATEMENT_TIMEOUT_MS (--db-statement-timeout-ms) is too small")
        })?;
        if self.db_statement_timeout_ms >= self.request_timeout_ms {
            anyhow::bail!(
                "MALL_DB_STATEMENT_TIMEOUT_MS ({} ms) must be below MALL_REQUEST_TIMEOUT_MS ({} \
                 ms): a statement must end, and its caller get an answer, before the request \
                 gives up",
                self.db_statement_timeout_ms,
                self.request_timeout_ms
            );
        }
        Ok(())
    }

    pub fn pool_options(&self) -> store_mysql::PoolOptions {
        store_mysql::PoolOptions {
            size: self.db_pool_size.unwrap_or_else(default_pool_size),
            checkout_timeout: Duration::from_millis(self.db_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
        }
    }

    pub fn store_options(&self) -> store_mysql::StoreOptions {
        store_mysql::StoreOptions {
            group_commit: self.db_group_commit,
            pipeline: self.db_pipeline.into(),
        }
    }

    /// The JWT settings, if a key is configured.
    pub fn jwt(&self) -> Option<http_api::JwtSettings> {
        let key = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) => http_api::JwtKey::Secret(secret.clone()),
            (None, Some(pem)) => http_api::JwtKey::PublicKeyPem(pem.clone()),
            (None, None) => return None,
        };
        Some(http_api::JwtSettings {
            key,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        })
    }

    /// The rate limit, unless it is off.
    pub fn rate_limit(&self) -> Option<http_api::RateLimit> {
        let per_second = std::num::NonZeroU32::new(self.rate_limit_per_sec)?;
        let burst = self.rate_limit_burst.unwrap_or(self.rate_limit_per_sec.saturating_mul(2));
        Some(http_api::RateLimit {
            per_second,
            burst: std::num::NonZeroU32::new(burst).unwrap_or(per_second),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_override_defaults_and_bad_values_are_refused() {
        let config = Config::parse_from(["mall", "--order-ttl-secs", "5", "--ranking-size", "10"]);
        assert_eq!((config.order_ttl_secs, config.ranking_size, config.ranking_days), (5, 10, 3));
        assert!(Config::try_parse_from(["mall", "--order-ttl-secs", "0"]).is_err());
        assert!(Config::try_parse_from(["mall", "--ranking-size", "x"]).is_err());
        assert!(Config::try_parse_from(["mall", "--db-pool-size", "1"]).is_err());
        let migrate = Config::parse_from(["mall", "migrate", "--database-url", "mysql://h/db"]);
        assert_eq!(migrate.command, Some(Command::Migrate));
        assert_eq!(migrate.database_url.as_deref(), Some("mysql://h/db"));
        assert_eq!(Config::parse_from(["mall", "openapi"]).command, Some(Command::Openapi));
    }

    #[test]
    fn group_commit_is_on_unless_switched_off() {
        assert!(Config::defaults().store_options().group_commit);
        let off = Config::parse_from(["mall", "--db-group-commit", "off"]);
        assert!(!off.store_options().group_commit);
        assert!(Config::parse_from(["mall", "--db-group-commit", "on"]).db_group_commit);
        assert!(Config::try_parse_from(["mall", "--db-group-commit", "maybe"]).is_err());
        assert_eq!(Config::defaults().store_options().pipeline, 1);
        assert_eq!(Config::parse_from(["mall", "--db-pipeline", "3"]).store_options().pipeline, 3);
        assert!(Config::try_parse_from(["mall", "--db-pipeline", "0"]).is_err());
        assert!(Config::try_parse_from(["mall", "--db-pipeline", "9"]).is_err());
    }

    #[test]
    fn the_time_limits_must_nest() {
        let config = Config::defaults();
        config.check().expect("the defaults nest");
        assert_eq!(config.pool_options().lock_wait(), Duration::from_secs(2));
        let equal = Config::parse_from(["mall", "--db-statement-timeout-ms", "10000"]);
        let error = format!("{:#}", equal.check().expect_err("not below the request limit"));
        assert!(error.contains("MALL_REQUEST_TIMEOUT_MS"), "{error}");
        let tiny = Config::parse_from(["mall", "--db-statement-timeout-ms", "1500"]);
        let error = format!("{:#}", tiny.check().expect_err("no room for a lock wait"));
        assert!(error.contains("MALL_DB_STATEMENT_TIMEOUT_MS"), "{error}");
        let long = Config::parse_from([
            "mall",
            "--db-statement-timeout-ms",
            "30000",
            "--request-timeout-ms",
            "60000",
        ]);
        long.check().expect("longer limits that nest");
        assert_eq!(long.pool_options().lock_wait(), Duration::from_secs(15));
    }
}

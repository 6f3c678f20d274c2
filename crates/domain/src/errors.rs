//! One error enum per use case. Each variant is a business outcome the caller can act on;
//! `Unexpected` carries everything else (a store that is down, a bug) with its cause chain.
//! The HTTP adapter maps each variant onto a SPEC error code in one place.

use thiserror::Error;

use crate::idempotency::IdempotencyError;
use crate::values::{AmountError, ProductId, UserId};

#[derive(Debug, Error)]
pub enum RegisterError {
    #[error("user {0} is already registered")]
    AlreadyRegistered(UserId),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum ChargeError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("the balance would be too large: {0}")]
    Amount(#[from] AmountError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum BalanceError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum ProductLookupError {
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum AddProductError {
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum EditProductError {
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    #[error("the stock would be too large: {0}")]
    Amount(#[from] AmountError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum PlaceOrderError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    #[error("the order total is too large: {0}")]
    Amount(#[from] AmountError),
    #[error("not enough stock of product {0}")]
    LackOfStock(ProductId),
    #[error("the balance does not cover the order total")]
    LackOfPoints,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum PendingOrderError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("no pending order form")]
    NoPendingOrder,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum PayError {
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    #[error("no pending order form: none, expired or already paid")]
    NoPendingOrder,
    #[error("the items differ from the pending order form")]
    ItemsMismatch,
    #[error("the balance does not cover the order total")]
    LackOfPoints,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Error)]
pub enum RankingError {
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

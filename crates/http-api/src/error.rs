//! `ApiError`: the one place where every failure becomes a SPEC error code, an HTTP status and
//! a JSON body `{"errorcode": N, "message": "..."}`.

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use domain::errors::{
    AddProductError, BalanceError, CatalogError, ChargeError, EditProductError, PayError,
    PendingOrderError, PlaceOrderError, ProductLookupError, RankingError, RegisterError,
};
use domain::idempotency::{IdempotencyError, InvalidIdempotencyKey};
use domain::model::OrderItemsError;
use domain::values::{AmountError, InvalidProductId, InvalidProductName, InvalidUserId};
use serde::Serialize;

/// SPEC §2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    Success = 0,
    InvalidRequest = 1,
    InvalidAmount = 2,
    LackOfPoint = 3,
    LackOfProducts = 4,
    NoPendingOrder = 5,
    Unauthorized = 6,
    Unavailable = 7,
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .enum_values(Some(0..=7))
            .description(Some(
                "0 success, 1 invalid request, 2 invalid amount, 3 lack of point, 4 lack of \
                 products, 5 no pending order, 6 unauthorized, 7 unavailable",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

/// Every error body: `{"errorcode": N, "message": "..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub errorcode: ErrorCode,
    pub message: String,
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(*self as u8)
    }
}

/// A failed request: what the client is told.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
    /// The methods for an `Allow` header (405).
    allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        Self { status, code, message: message.into(), retry_after, allow: None }
    }

    /// 429, code 7: too many calls; retry after `wait`.
    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Unavailable,
                "too many requests, retry later",
            )
        }
    }

    /// 503, code 7: the request took longer than the service allows.
    pub fn timed_out() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the request took too long, retry later",
        )
    }

    /// 400, code 1: malformed body, bad id, mismatched pay items.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// 404, code 1: unknown user, product or route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::InvalidRequest, message)
    }

    /// 405, code 1: the route exists, the method does not; `allow` lists the methods it has
    /// (`GET, PATCH`), sent as `Allow` (RFC 9110 §15.5.6).
    pub fn method_not_allowed(allow: impl Into<String>) -> Self {
        let allow = allow.into();
        Self {
            allow: Some(allow.clone()),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidRequest,
                format!("this method is not allowed on this route (allowed: {allow})"),
            )
        }
    }

    /// 400, code 2.
    pub fn invalid_amount(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidAmount, message)
    }

    /// 401, code 6: missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 403, code 6: not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Unauthorized, message)
    }

    /// 503, code 7. The cause is logged with its whole chain and never shown to the client.
    pub fn unavailable(cause: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{cause:#}"), "request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the service is unavailable, retry later",
        )
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errorcode {}): {}", self.status, self.code as u8, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.clone()));
        }
        response.json(ErrorResponse { errorcode: self.code, message: self.message.clone() })
    }
}

// Actix's own rejections, routed here by the extractor configs in `crate::configure`.

impl From<&JsonPayloadError> for ApiError {
    fn from(error: &JsonPayloadError) -> Self {
        match error {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidRequest,
                format!("the JSON body is larger than {limit} bytes"),
            ),
            JsonPayloadError::ContentType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidRequest,
                "the body must be JSON with Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(cause) => {
                Self::bad_request(format!("malformed JSON body: {cause}"))
            }
            other => Self::bad_request(format!("unreadable body: {other}")),
        }
    }
}

impl From<&PathError> for ApiError {
    fn from(error: &PathError) -> Self {
        Self::bad_request(format!("bad path: {error}"))
    }
}

impl From<&QueryPayloadError> for ApiError {
    fn from(error: &QueryPayloadError) -> Self {
        Self::bad_request(format!("bad query string: {error}"))
    }
}

// Validation failures of the value types.

impl From<InvalidUserId> for ApiError {
    fn from(error: InvalidUserId) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<InvalidProductId> for ApiError {
    fn from(error: InvalidProductId) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<InvalidProductName> for ApiError {
    fn from(error: InvalidProductName) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<AmountError> for ApiError {
    fn from(error: AmountError) -> Self {
        Self::invalid_amount(error.to_string())
    }
}

impl From<OrderItemsError> for ApiError {
    fn from(error: OrderItemsError) -> Self {
        match error {
            OrderItemsError::Amount(amount) => amount.into(),
            OrderItemsError::TooManyUnits => Self::invalid_amount(error.to_string()),
            shape @ (OrderItemsError::Empty | OrderItemsError::TooManyLines) => {
                Self::bad_request(shape.to_string())
            }
        }
    }
}

// The domain speaks of an idempotency key; over HTTP it is the `Idempotency-Key` header, and
// the answers name it.

impl From<InvalidIdempotencyKey> for ApiError {
    fn from(InvalidIdempotencyKey: InvalidIdempotencyKey) -> Self {
        Self::bad_request("an Idempotency-Key is 1-255 visible ASCII characters")
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> Self {
        let (status, message) = match error {
            IdempotencyError::Mismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request",
            ),
            IdempotencyError::InProgress => {
                (StatusCode::CONFLICT, "a request with this Idempotency-Key is still in progress")
            }
            IdempotencyError::AlreadyUsed => {
                (StatusCode::CONFLICT, "this Idempotency-Key was used already")
            }
        };
        Self::new(status, ErrorCode::InvalidRequest, message)
    }
}

// Use-case outcomes.

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::AlreadyRegistered(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::InvalidRequest, error.to_string())
            }
            RegisterError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<ChargeError> for ApiError {
    fn from(error: ChargeError) -> Self {
        match error {
            ChargeError::UnknownUser(_) => Self::not_found(error.to_string()),
            ChargeError::Amount(_) => Self::invalid_amount(error.to_string()),
            ChargeError::Idempotency(error) => error.into(),
            ChargeError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<BalanceError> for ApiError {
    fn from(error: BalanceError) -> Self {
        match error {
            BalanceError::UnknownUser(_) => Self::not_found(error.to_string()),
            BalanceError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<ProductLookupError> for ApiError {
    fn from(error: ProductLookupError) -> Self {
        match error {
            ProductLookupError::UnknownProduct(_) => Self::not_found(error.to_string()),
            ProductLookupError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        let CatalogError::Unexpected(cause) = error;
        Self::unavailable(&cause)
    }
}

impl From<AddProductError> for ApiError {
    fn from(error: AddProductError) -> Self {
        let AddProductError::Unexpected(cause) = error;
        Self::unavailable(&cause)
    }
}

impl From<EditProductError> for ApiError {
    fn from(error: EditProductError) -> Self {
        match error {
            EditProductError::UnknownProduct(_) => Self::not_found(error.to_string()),
            EditProductError::Amount(_) => Self::invalid_amount(error.to_string()),
            EditProductError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::UnknownUser(_) | PlaceOrderError::UnknownProduct(_) => {
                Self::not_found(error.to_string())
            }
            PlaceOrderError::Amount(_) => Self::invalid_amount(error.to_string()),
            PlaceOrderError::LackOfStock(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::LackOfProducts, error.to_string())
            }
            PlaceOrderError::LackOfPoints => {
                Self::new(StatusCode::CONFLICT, ErrorCode::LackOfPoint, error.to_string())
            }
            PlaceOrderError::Idempotency(error) => error.into(),
            PlaceOrderError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<PendingOrderError> for ApiError {
    fn from(error: PendingOrderError) -> Self {
        match error {
            PendingOrderError::UnknownUser(_) => Self::not_found(error.to_string()),
            PendingOrderError::NoPendingOrder => {
                Self::new(StatusCode::NOT_FOUND, ErrorCode::NoPendingOrder, error.to_string())
            }
            PendingOrderError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<PayError> for ApiError {
    fn from(error: PayError) -> Self {
        match error {
            PayError::UnknownUser(_) => Self::not_found(error.to_string()),
            PayError::NoPendingOrder => {
                Self::new(StatusCode::NOT_FOUND, ErrorCode::NoPendingOrder, error.to_string())
            }
            PayError::ItemsMismatch => Self::bad_request(error.to_string()),
            PayError::LackOfPoints => {
                Self::new(StatusCode::CONFLICT, ErrorCode::LackOfPoint, error.to_string())
            }
            PayError::Idempotency(error) => error.into(),
            PayError::Unexpected(cause) => Self::unavailable(&cause),
        }
    }
}

impl From<RankingError> for ApiError {
    fn from(error: RankingError) -> Self {
        let RankingError::Unexpected(cause) = error;
        Self::unavailable(&cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_refusals_name_the_header() {
        let answers = [
            (
                ApiError::from(InvalidIdempotencyKey),
                StatusCode::BAD_REQUEST,
                "an Idempotency-Key is 1-255 visible ASCII characters",
            ),
            (
                IdempotencyError::Mismatch.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request",
            ),
            (
                IdempotencyError::InProgress.into(),
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key is still in progress",
            ),
            (
                IdempotencyError::AlreadyUsed.into(),
                StatusCode::CONFLICT,
                "this Idempotency-Key was used already",
            ),
        ];
        for (error, status, message) in answers {
            assert_eq!(
                (error.status, error.code, error.message.as_str()),
                (status, ErrorCode::InvalidRequest, message)
            );
        }
    }
}

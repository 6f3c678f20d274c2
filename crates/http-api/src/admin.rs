//! The admin guard: `Authorization: Bearer <MALL_ADMIN_TOKEN>`, compared in constant time.

use std::fmt;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The configured admin token; `None` turns every admin call away with 403.
#[derive(Clone, Default)]
pub struct AdminToken(Option<String>);

impl AdminToken {
    pub fn new(token: Option<String>) -> Self {
        Self(token.filter(|t| !t.is_empty()))
    }

    fn verify(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.0 else {
            return Err(ApiError::forbidden(
                "admin calls are disabled: MALL_ADMIN_TOKEN is not set",
            ));
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::unauthorized("admin calls need Authorization: Bearer <token>")
            })?;
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("wrong admin token"))
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.0.is_some() { "set" } else { "unset" };
        f.debug_tuple("AdminToken").field(&state).finish()
    }
}

/// Proof that the caller is an admin. Put it first in a handler's arguments: extractors run in
/// order, so a bad token answers before the body is read.
#[derive(Debug)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verdict = match request.app_data::<web::Data<AdminToken>>() {
            Some(token) => token.verify(request).map(|()| Admin),
            None => Err(ApiError::forbidden("admin calls are disabled")),
        };
        ready(verdict)
    }
}

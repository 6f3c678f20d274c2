//! Who is calling: the admin token, a JWT whose `sub` is a user id (or that carries the admin
//! role), or — when no JWT key is configured — anyone, as the seed service was.

use std::fmt;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::limits::RateLimits;

/// Where the JWT verification key comes from.
#[derive(Clone)]
pub enum JwtKey {
    /// A shared secret: HS256.
    Secret(String),
    /// A PEM public key (RSA: RS256, Ed25519: EdDSA), or the path of a file holding one.
    PublicKeyPem(String),
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secret(_) => "JwtKey::Secret(..)",
            Self::PublicKeyPem(_) => "JwtKey::PublicKeyPem(..)",
        })
    }
}

/// JWT settings (`MALL_JWT_SECRET` / `MALL_JWT_PUBLIC_KEY`, `MALL_JWT_ISSUER`,
/// `MALL_JWT_AUDIENCE`).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// The role claim value that makes a JWT an admin's.
pub const ADMIN_ROLE: &str = "admin";

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl Claims {
    fn is_admin(&self) -> bool {
        self.role.as_deref() == Some(ADMIN_ROLE) || self.roles.iter().any(|r| r == ADMIN_ROLE)
    }
}

/// Verifies bearer credentials. Built once at start; shared by every worker.
#[derive(Clone)]
pub struct Authenticator {
    admin_token: Option<String>,
    jwt: Option<(DecodingKey, Validation)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "set"))
            .field("jwt", &self.jwt.as_ref().map(|(_, v)| &v.algorithms))
            .finish()
    }
}

impl Authenticator {
    /// # Errors
    /// When the key cannot be read or is not a supported PEM public key.
    pub fn new(admin_token: Option<String>, jwt: Option<JwtSettings>) -> anyhow::Result<Self> {
        let admin_token = admin_token.filter(|t| !t.is_empty());
        let jwt = jwt.map(verifier).transpose()?;
        Ok(Self { admin_token, jwt })
    }

    /// Whether user endpoints require a JWT.
    pub fn users_must_authenticate(&self) -> bool {
        self.jwt.is_some()
    }

    fn bearer(request: &HttpRequest) -> Option<&str> {
        let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    fn is_admin_token(&self, token: &str) -> bool {
        self.admin_token
            .as_deref()
            .is_some_and(|expected| bool::from(token.as_bytes().ct_eq(expected.as_bytes())))
    }

    /// Who sent `request`.
    fn identify(&self, request: &HttpRequest) -> Result<Caller, ApiError> {
        let Some((key, validation)) = &self.jwt else {
            return Ok(match Self::bearer(request) {
                Some(token) if self.is_admin_token(token) => Caller::Admin,
                _ => Caller::Anyone,
            });
        };
        let token = Self::bearer(request)
            .ok_or_else(|| ApiError::unauthorized("this call needs Authorization: Bearer <JWT>"))?;
        if self.is_admin_token(token) {
            return Ok(Caller::Admin);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|error| ApiError::unauthorized(format!("invalid token: {error}")))?
            .claims;
        Ok(if claims.is_admin() { Caller::Admin } else { Caller::User(claims.sub) })
    }

    fn admin(&self, request: &HttpRequest) -> Result<(), ApiError> {
        if self.admin_token.is_none() && self.jwt.is_none() {
            return Err(ApiError::forbidden(
                "admin calls are disabled: set MALL_ADMIN_TOKEN or a JWT key",
            ));
        }
        if Self::bearer(request).is_none() {
            return Err(ApiError::unauthorized("admin calls need Authorization: Bearer <token>"));
        }
        match self.identify(request) {
            Ok(Caller::Admin) => Ok(()),
            Ok(Caller::User(_)) => Err(ApiError::forbidden("admin calls need the admin role")),
            Ok(Caller::Anyone) => Err(ApiError::unauthorized("wrong admin token")),
            Err(error) => Err(error),
        }
    }
}

fn verifier(settings: JwtSettings) -> anyhow::Result<(DecodingKey, Validation)> {
    let (key, algorithm) = match settings.key {
        JwtKey::Secret(secret) => {
            anyhow::ensure!(secret.len() >= 32, "MALL_JWT_SECRET must be at least 32 bytes");
            (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256)
        }
        JwtKey::PublicKeyPem(pem) => {
            let pem = if pem.trim_start().starts_with("-----BEGIN") {
                pem
            } else {
                std::fs::read_to_string(&pem)
                    .map_err(|e| anyhow::anyhow!("reading MALL_JWT_PUBLIC_KEY file {pem}: {e}"))?
            };
            if let Ok(key) = DecodingKey::from_ed_pem(pem.as_bytes()) {
                (key, Algorithm::EdDSA)
            } else {
                let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                    anyhow::anyhow!(
                        "MALL_JWT_PUBLIC_KEY is neither an Ed25519 nor an RSA PEM public key: {e}"
                    )
                })?;
                (key, Algorithm::RS256)
            }
        }
    };
    // One algorithm, pinned: a token signed any other way (or `none`) is refused.
    let mut validation = Validation::new(algorithm);
    // The same 5 s of clock skew for `exp` and `nbf`. `nbf` is checked when a token has one
    // (jsonwebtoken leaves it unchecked by default) but not required.
    validation.leeway = 5;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = settings.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match settings.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    Ok((key, validation))
}

/// The caller of a user endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No JWT key is configured: the service is open.
    Anyone,
    /// A verified JWT's subject.
    User(String),
    /// The admin token, or a JWT with the admin role.
    Admin,
}

impl Caller {
    /// Allows the call if the caller may act as `user`: the user themself or an admin (or
    /// anyone, when the service is open).
    ///
    /// # Errors
    /// 403, code 6, for another user's token.
    pub fn may_act_as(&self, user: &str) -> Result<(), ApiError> {
        match self {
            Self::User(subject) if subject != user => {
                Err(ApiError::forbidden("this token belongs to another user"))
            }
            _ => Ok(()),
        }
    }

    /// The key requests are counted under for rate limiting: the user, or else the client's
    /// address.
    pub fn rate_key(&self, request: &HttpRequest) -> Option<String> {
        match self {
            Self::User(subject) => Some(format!("user:{subject}")),
            Self::Admin => None,
            Self::Anyone => request.peer_addr().map(|peer| format!("ip:{}", peer.ip())),
        }
    }
}

fn authenticator(request: &HttpRequest) -> Result<&Authenticator, ApiError> {
    request
        .app_data::<web::Data<Authenticator>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| ApiError::forbidden("authentication is not configured"))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticator(request).and_then(|auth| auth.identify(request)))
    }
}

/// A caller of a call that changes state (charge, order, pay): authenticated like [`Caller`],
/// then counted against the rate limit (429 with `Retry-After` past it).
#[derive(Debug)]
pub struct Throttled(pub Caller);

impl FromRequest for Throttled {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verdict =
            authenticator(request).and_then(|auth| auth.identify(request)).and_then(|caller| {
                if let (Some(limits), Some(key)) =
                    (request.app_data::<web::Data<RateLimits>>(), caller.rate_key(request))
                {
                    limits.check(key)?;
                }
                Ok(Throttled(caller))
            });
        ready(verdict)
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
        ready(authenticator(request).and_then(|auth| auth.admin(request)).map(|()| Admin))
    }
}

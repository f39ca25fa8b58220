//! One error type for the HTTP edge: a stable code, a message for people, and the HTTP status it maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::ErrorCode;
use crate::store::StoreError;

/// An error as clients see it. Internal details go to the log, never into the message.
#[derive(Debug, Clone)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the HTTP body (e.g. `fields` of an invalid form, `allowed` stages).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError { code, message: message.into(), details: None }
    }
    /// The same error with an extra field in its HTTP body.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> AppError {
        self.details.get_or_insert_with(Default::default).insert(key.to_string(), value);
        self
    }
    /// A `rate_limited` answer's wait: its `Retry-After` header (and `retry_after_s` in the body).
    pub fn retry_after(self, seconds: u64) -> AppError {
        self.with("retry_after_s", serde_json::Value::from(seconds.max(1)))
    }
    pub fn unauthorized(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::Unauthorized, message)
    }
    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::Forbidden, message)
    }
    pub fn bad_field(message: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::BadField, message)
    }
    pub fn internal() -> AppError {
        AppError::new(ErrorCode::Internal, "internal error; nothing was changed")
    }

    /// The HTTP status for this error's code.
    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadField => StatusCode::BAD_REQUEST,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized | ErrorCode::BadToken | ErrorCode::TotpRequired | ErrorCode::TotpEnrolmentRequired => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::Forbidden | ErrorCode::NotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::NotFound
            | ErrorCode::UnknownContact
            | ErrorCode::UnknownHelpline
            | ErrorCode::NoSuchOffer
            | ErrorCode::UnknownCall => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::ServiceFull | ErrorCode::StageOrder | ErrorCode::LastAdmin => StatusCode::CONFLICT,
            ErrorCode::InvalidForm
            | ErrorCode::WeakPassword
            | ErrorCode::UnknownAwayReason
            | ErrorCode::InvalidSettings
            | ErrorCode::UnknownLocale
            | ErrorCode::InvalidAccount
            | ErrorCode::InvalidResetCode => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable | ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AppError::new(ErrorCode::NotFound, "not found"),
            StoreError::Conflict(what) => AppError::new(ErrorCode::Conflict, what),
            other => {
                tracing::error!(error = %other, "storage error");
                AppError::internal()
            }
        }
    }
}

/// The body of every error answer, as `AppError` writes it: a stable `code` and a `message` for
/// people. Some codes add fields: `invalid_form` (and a bad offline call record) `fields`, each bad
/// field's error; `stage_order` and `conflict` `allowed`, what may come next; `service_full`
/// `next_suggestion`, the next service with a free place.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The extra fields some codes add.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut details = self.details.unwrap_or_default();
        let retry_after = details.get("retry_after_s").and_then(serde_json::Value::as_u64).unwrap_or(60);
        details.remove("code");
        details.remove("message");
        let body = ErrorBody { code: self.code, message: self.message, details };
        let mut response = (status, Json(body)).into_response();
        if self.code == ErrorCode::RateLimited {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after));
        }
        response
    }
}

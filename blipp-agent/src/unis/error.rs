use std::path::PathBuf;

/// Why talking to UNIS or the MS failed.
#[derive(Debug, thiserror::Error)]
pub enum UnisError {
    /// No answer: connection refused, reset, timed out, TLS handshake
    /// failed. Worth retrying later.
    #[error("{method} {url}: unreachable: {source}")]
    Unreachable {
        /// The request's method.
        method: &'static str,
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// The request's method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body (the server's message).
        body: String,
    },
    /// A success whose body is not what the protocol says.
    #[error("{method} {url}: unexpected answer: {what}")]
    Unexpected {
        /// The request's method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// A URL that cannot be used.
    #[error("{url:?} is not a usable URL: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// A TLS file (certificate, key, CA bundle) that cannot be used.
    #[error("{}: {reason}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// TLS settings that do not fit together.
    #[error("TLS settings: {0}")]
    TlsSettings(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl UnisError {
    /// Whether the same request may succeed later unchanged: the server
    /// was unreachable or failed on its side (5xx, 408, 429). A 4xx other
    /// than those means the request itself is wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            UnisError::Unreachable { .. } => true,
            UnisError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

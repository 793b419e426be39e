//! The client's errors: each names the ACME step that failed and carries the server's problem
//! document (RFC 7807 / RFC 8555 §6.7) when it sent one, so a log line says what the CA said.

use crate::csr::InvalidDomain;
use crate::json::Value;
use crate::key::KeyError;
use crate::transport::TransportError;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The ACME step a request belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// GET the directory.
    Directory,
    /// HEAD newNonce.
    NewNonce,
    /// POST newAccount.
    NewAccount,
    /// POST newOrder.
    NewOrder,
    /// POST-as-GET an authorization (including polling it).
    Authorization,
    /// POST `{}` to a challenge.
    Challenge,
    /// POST the CSR to the order's finalize URL.
    Finalize,
    /// POST-as-GET the order (polling it).
    Order,
    /// POST-as-GET the certificate chain.
    Download,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Directory => "directory",
            Step::NewNonce => "newNonce",
            Step::NewAccount => "newAccount",
            Step::NewOrder => "newOrder",
            Step::Authorization => "authorization",
            Step::Challenge => "challenge",
            Step::Finalize => "finalize",
            Step::Order => "order",
            Step::Download => "certificate download",
        })
    }
}

/// An ACME problem document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problem {
    /// `type`, e.g. `urn:ietf:params:acme:error:unauthorized`.
    pub kind: String,
    /// `detail`, the human-readable explanation.
    pub detail: String,
    /// `status`, the HTTP status the server meant.
    pub status: Option<u16>,
    /// `identifier.value` of a subproblem.
    pub identifier: Option<String>,
    /// `subproblems` (RFC 8555 §6.7.1), one level deep.
    pub subproblems: Vec<Problem>,
}

/// The error type for `badNonce`, which the client retries once by itself.
pub const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

impl Problem {
    /// Reads a problem document out of a parsed JSON value; `None` unless it has a `type` or
    /// `detail` string.
    pub fn from_json(v: &Value) -> Option<Problem> {
        Self::from_json_depth(v, 0)
    }
    fn from_json_depth(v: &Value, depth: u8) -> Option<Problem> {
        let kind = v.str_field("type");
        let detail = v.str_field("detail");
        if kind.is_none() && detail.is_none() {
            return None;
        }
        let subproblems = match (depth, v.get("subproblems").and_then(Value::as_array)) {
            (0, Some(list)) => list
                .iter()
                .filter_map(|p| Self::from_json_depth(p, 1))
                .collect(),
            _ => Vec::new(),
        };
        Some(Problem {
            kind: String::from(kind.unwrap_or("")),
            detail: String::from(detail.unwrap_or("")),
            status: v
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
            identifier: v
                .get("identifier")
                .and_then(|i| i.str_field("value"))
                .map(String::from),
            subproblems,
        })
    }
    /// Parses a response body as a problem document.
    pub fn from_body(body: &[u8]) -> Option<Problem> {
        Self::from_json(&crate::json::parse(body).ok()?)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.identifier {
            write!(f, "{id}: ")?;
        }
        match (self.kind.is_empty(), self.detail.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.kind, self.detail)?,
            (false, true) => f.write_str(&self.kind)?,
            _ => f.write_str(&self.detail)?,
        }
        for sub in &self.subproblems {
            write!(f, "; {sub}")?;
        }
        Ok(())
    }
}

/// Why obtaining a certificate failed. Every variant is worth a log line and a retry with
/// back-off ([`crate::default_backoff`]); none is a reason to crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request got no response.
    Transport {
        /// Which step.
        step: Step,
        /// What the transport said.
        error: TransportError,
    },
    /// The server answered with an error status.
    Http {
        /// Which step.
        step: Step,
        /// The HTTP status.
        status: u16,
        /// The problem document, if the body was one.
        problem: Option<Box<Problem>>,
    },
    /// The server's answer could not be understood (bad JSON, missing field or header).
    Malformed {
        /// Which step.
        step: Step,
        /// What was wrong.
        what: &'static str,
    },
    /// The CA could not validate a domain (authorization or challenge `invalid`).
    ChallengeFailed {
        /// The domain.
        domain: String,
        /// The challenge's `error`, if any.
        problem: Option<Box<Problem>>,
    },
    /// The order became `invalid`.
    OrderInvalid {
        /// The order's `error`, if any.
        problem: Option<Box<Problem>>,
    },
    /// The authorization offers no http-01 challenge (e.g. a wildcard needs dns-01).
    NoHttp01 {
        /// The domain.
        domain: String,
    },
    /// Polling did not reach a final state within the configured number of polls.
    PollLimit {
        /// Which step was polled.
        step: Step,
        /// How many polls were made.
        polls: u32,
    },
    /// A requested domain is not a valid DNS name.
    InvalidDomain(InvalidDomain),
    /// A key could not be made.
    Key(KeyError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport { step, error } => write!(f, "ACME {step}: request failed: {error}"),
            Error::Http {
                step,
                status,
                problem: Some(p),
            } => write!(f, "ACME {step}: HTTP {status}: {p}"),
            Error::Http {
                step,
                status,
                problem: None,
            } => write!(f, "ACME {step}: HTTP {status}"),
            Error::Malformed { step, what } => write!(f, "ACME {step}: malformed response: {what}"),
            Error::ChallengeFailed {
                domain,
                problem: Some(p),
            } => {
                write!(f, "ACME challenge: {domain} could not be validated: {p}")
            }
            Error::ChallengeFailed {
                domain,
                problem: None,
            } => {
                write!(f, "ACME challenge: {domain} could not be validated")
            }
            Error::OrderInvalid { problem: Some(p) } => write!(f, "ACME order: invalid: {p}"),
            Error::OrderInvalid { problem: None } => f.write_str("ACME order: invalid"),
            Error::NoHttp01 { domain } => write!(
                f,
                "ACME authorization: {domain} offers no http-01 challenge"
            ),
            Error::PollLimit { step, polls } => {
                write!(f, "ACME {step}: still not finished after {polls} polls")
            }
            Error::InvalidDomain(d) => write!(f, "ACME newOrder: {d}"),
            Error::Key(k) => write!(f, "ACME key: {k}"),
        }
    }
}

impl Error {
    /// The server's problem document, if the error carries one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Http { problem, .. }
            | Error::ChallengeFailed { problem, .. }
            | Error::OrderInvalid { problem } => problem.as_deref(),
            _ => None,
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e)
    }
}

impl From<InvalidDomain> for Error {
    fn from(e: InvalidDomain) -> Self {
        Error::InvalidDomain(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_names_step_type_and_detail() {
        let p = Problem::from_body(
            br#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no .local","status":400,
                "subproblems":[{"type":"urn:ietf:params:acme:error:malformed","detail":"bad","identifier":{"type":"dns","value":"a.local"}}]}"#,
        )
        .unwrap();
        assert_eq!(p.status, Some(400));
        let e = Error::Http {
            step: Step::NewOrder,
            status: 400,
            problem: Some(Box::new(p)),
        };
        assert_eq!(
            e.to_string(),
            "ACME newOrder: HTTP 400: urn:ietf:params:acme:error:rejectedIdentifier: no .local; \
             a.local: urn:ietf:params:acme:error:malformed: bad"
        );
        let e = Error::Http {
            step: Step::Finalize,
            status: 503,
            problem: None,
        };
        assert_eq!(e.to_string(), "ACME finalize: HTTP 503");
    }

    #[test]
    fn non_problem_bodies_give_none() {
        assert_eq!(Problem::from_body(b"<html>502</html>"), None);
        assert_eq!(Problem::from_body(b"{\"status\":\"valid\"}"), None);
        assert_eq!(Problem::from_body(b"[]"), None);
    }
}

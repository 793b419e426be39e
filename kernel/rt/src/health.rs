//! Health checks in the `/livez` and `/readyz` convention (Kubernetes probes, cloud load
//! balancers): the application says when it is ready with [`set_ready`], and its HTTP server
//! answers both paths with [`answer`].
//!
//! ```ignore
//! let listener = net.listen(80)?;
//! fata::health::set_ready(true);            // after whatever must happen before traffic
//! // in the request handler, before routing:
//! if let Some(a) = fata::health::answer(req.path) { /* respond a.status, a.reason, a.body */ }
//! ```
//!
//! - live: the executor runs (an answer at all proves it); `200 ok`.
//! - ready: the application said so **and** the network has the address it waits for (a
//!   DHCP lease, the static address, or SLAAC — what also prints `fata: ready tcp/PORT`);
//!   else `503` with the reason in the body.
//!
//! Layer: the runtime (`fata`); the decision is a pure function, host-tested.

use core::sync::atomic::{AtomicBool, Ordering};

static APP_READY: AtomicBool = AtomicBool::new(false);

/// Says whether the application is ready for traffic (false at boot). Readiness also needs
/// the network's address; see [`readiness`].
pub fn set_ready(ready: bool) {
    APP_READY.store(ready, Ordering::Relaxed);
}

/// Whether the image is ready for traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready.
    Ready,
    /// The network has not got its address yet (DHCP under way, SLAAC pending).
    NoAddress,
    /// The image has networking but it could not be started.
    NoNetwork,
    /// The application has not called `set_ready(true)` (or called `set_ready(false)`).
    Starting,
}

impl Readiness {
    /// The body `/readyz` answers with.
    pub fn message(self) -> &'static str {
        match self {
            Readiness::Ready => "ok\n",
            Readiness::NoAddress => "not ready: the network has no address yet\n",
            Readiness::NoNetwork => "not ready: the network could not be started\n",
            Readiness::Starting => "not ready: the application is starting\n",
        }
    }
}

/// Readiness from the application's word and the network's state (`None`: no networking
/// in the image; `Some(Err(()))`: networking failed to start; `Some(Ok(reachable))`).
pub(crate) fn decide(app: bool, net: Option<Result<bool, ()>>) -> Readiness {
    match net {
        Some(Err(())) => Readiness::NoNetwork,
        Some(Ok(false)) => Readiness::NoAddress,
        _ if !app => Readiness::Starting,
        _ => Readiness::Ready,
    }
}

#[cfg(feature = "net")]
fn network() -> Option<Result<bool, ()>> {
    Some(
        crate::runtime::net_stack()
            .map(|s| s.is_reachable())
            .map_err(drop),
    )
}

#[cfg(not(feature = "net"))]
fn network() -> Option<Result<bool, ()>> {
    None
}

/// Whether the image is ready, and if not why.
pub fn readiness() -> Readiness {
    decide(APP_READY.load(Ordering::Relaxed), network())
}

/// Whether the image is ready for traffic.
pub fn is_ready() -> bool {
    readiness() == Readiness::Ready
}

/// Whether the image is alive: true whenever code can ask (the executor is running).
pub fn is_live() -> bool {
    true
}

/// An answer to a health check, for the application's HTTP server to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 200 or 503.
    pub status: u16,
    /// `OK` or `Service Unavailable`.
    pub reason: &'static str,
    /// A line of text saying why.
    pub body: &'static str,
}

/// The content type of [`Answer::body`].
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

fn answer_with(path: &str, live: bool, ready: Readiness) -> Option<Answer> {
    let path = path.split('?').next().unwrap_or(path);
    let ok = |ok: bool, body| {
        Some(Answer {
            status: if ok { 200 } else { 503 },
            reason: if ok { "OK" } else { "Service Unavailable" },
            body,
        })
    };
    match path {
        "/livez" => ok(live, if live { "ok\n" } else { "not live\n" }),
        "/readyz" => ok(ready == Readiness::Ready, ready.message()),
        _ => None,
    }
}

/// The answer to `GET /livez` or `GET /readyz` (a query string is ignored), `None` for
/// every other path.
pub fn answer(path: &str) -> Option<Answer> {
    if !path.starts_with("/livez") && !path.starts_with("/readyz") {
        return None;
    }
    answer_with(path, is_live(), readiness())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_the_application_and_the_network_address() {
        assert_eq!(decide(false, Some(Ok(false))), Readiness::NoAddress);
        assert_eq!(decide(true, Some(Ok(false))), Readiness::NoAddress);
        assert_eq!(decide(false, Some(Ok(true))), Readiness::Starting);
        assert_eq!(decide(true, Some(Ok(true))), Readiness::Ready);
        assert_eq!(decide(true, Some(Err(()))), Readiness::NoNetwork);
        // An image without networking is ready when the application says so.
        assert_eq!(decide(true, None), Readiness::Ready);
        assert_eq!(decide(false, None), Readiness::Starting);
    }

    #[test]
    fn health_paths_answer_200_or_503_and_other_paths_are_left_alone() {
        let a = answer_with("/readyz", true, Readiness::NoAddress).unwrap();
        assert_eq!((a.status, a.reason), (503, "Service Unavailable"));
        assert!(a.body.contains("no address"), "{}", a.body);
        let a = answer_with("/readyz?verbose", true, Readiness::Ready).unwrap();
        assert_eq!((a.status, a.body), (200, "ok\n"));
        let a = answer_with("/livez", true, Readiness::Starting).unwrap();
        assert_eq!((a.status, a.body), (200, "ok\n"));
        assert_eq!(answer_with("/livezz", true, Readiness::Ready), None);
        assert_eq!(answer_with("/", true, Readiness::Ready), None);
        assert_eq!(answer("/index.html"), None);
    }
}

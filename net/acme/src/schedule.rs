//! When to renew and how long to wait before retrying: pure arithmetic on Unix seconds and
//! durations, so the runtime's timers and wall clock stay outside this crate.

use core::time::Duration;

/// Renew 30 days before expiry at the latest.
pub const RENEW_BEFORE: u64 = 30 * 86_400;

/// When to renew a certificate valid from `not_before` until `not_after` (Unix seconds): at two
/// thirds of its lifetime or [`RENEW_BEFORE`] (30 days) before expiry, whichever is earlier —
/// except that a short-lived certificate (under 60 days, where "30 days before" would come
/// before half its life) is renewed at half its life rather than at once. Never before `now`:
/// an expired or nearly expired certificate is renewed at once.
///
/// Pass `now` as `not_before` when the certificate's start is unknown (just issued).
pub fn renew_at(not_before: i64, not_after: i64, now: i64) -> i64 {
    let lifetime = not_after.saturating_sub(not_before);
    if lifetime <= 0 {
        return now; // nonsense validity: replace it
    }
    let two_thirds = not_before.saturating_add(lifetime / 3 * 2 + (lifetime % 3) * 2 / 3);
    let half = not_before.saturating_add(lifetime / 2);
    let month_before = not_after.saturating_sub(RENEW_BEFORE as i64).max(half);
    two_thirds.min(month_before).max(now)
}

/// Exponential back-off for retrying a failed issuance: `base · 2^attempt`, capped at `cap`.
/// `attempt` 0 is the first retry.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// [`backoff`] with fata's defaults: 10 s doubling up to 1 h.
pub fn default_backoff(attempt: u32) -> Duration {
    backoff(attempt, Duration::from_secs(10), Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn long_certificates_renew_at_two_thirds() {
        // 90 days: 2/3 = day 60 = 30 days before expiry: both rules agree.
        assert_eq!(renew_at(0, 90 * DAY, 0), 60 * DAY);
        // 1 year: 2/3 (day 243.3) is earlier than 30 days before expiry (day 335).
        assert_eq!(renew_at(0, 365 * DAY, 0), 21_024_000);
    }

    #[test]
    fn sixty_day_certificate_renews_thirty_days_before_expiry() {
        assert_eq!(renew_at(DAY, 61 * DAY, 0), 31 * DAY);
        assert_eq!(renew_at(0, 75 * DAY, 0), 45 * DAY);
    }

    #[test]
    fn short_lived_certificate_renews_at_half_life_not_at_once() {
        assert_eq!(renew_at(1000, 1000 + 6 * DAY, 1000), 1000 + 3 * DAY);
        assert_eq!(renew_at(0, 300, 0), 150);
    }

    #[test]
    fn never_schedules_in_the_past() {
        assert_eq!(renew_at(0, 90 * DAY, 80 * DAY), 80 * DAY);
        assert_eq!(
            renew_at(0, 90 * DAY, 100 * DAY),
            100 * DAY,
            "expired: renew now"
        );
        assert_eq!(renew_at(10, 5, 7), 7, "inverted validity: renew now");
        assert_eq!(renew_at(i64::MIN, i64::MAX, 0), 0);
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_caps_at_an_hour() {
        let secs: alloc::vec::Vec<u64> = (0..12).map(|a| default_backoff(a).as_secs()).collect();
        assert_eq!(
            secs,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
        );
        assert_eq!(default_backoff(u32::MAX), Duration::from_secs(3600));
        assert_eq!(
            backoff(
                40,
                Duration::from_secs(u64::MAX / 2),
                Duration::from_secs(5)
            ),
            Duration::from_secs(5)
        );
    }
}

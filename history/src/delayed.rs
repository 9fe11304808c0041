//! The delayed sends' values: each names its delay, so a checker knows from the value
//! alone when the message may first be delivered. A value is `{lane}-{seq}-d{delay_ms}`.

/// The value of a lane's `seq`th send, delayed by `delay_ms`.
pub fn value(lane: &str, seq: u64, delay_ms: u64) -> String {
    format!("{lane}-{seq}-d{delay_ms}")
}

/// The delay a delayed send's value names; `None` for any other value.
pub fn delay_ms(value: &str) -> Option<u64> {
    value.rsplit('-').next()?.strip_prefix('d')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_names_its_delay() {
        assert_eq!(delay_ms(&value("p1.2", 7, 5_000)), Some(5_000));
        assert_eq!(delay_ms("p1.2-7"), None);
        assert_eq!(delay_ms("t1-3-uc"), None);
    }
}

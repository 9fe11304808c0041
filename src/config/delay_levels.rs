//! RocketMQ's `messageDelayLevel`: the delays of the levels a producer's `DELAY` property
//! and a consumer's send-back choose from, written as Java's broker reads them.

/// Java's default, "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
pub const DEFAULT_MESSAGE_DELAY_LEVEL: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// More levels than this is a typo: each level is a delivery task and a schedule queue.
pub const DELAY_LEVELS_MAX: usize = 64;

/// Parses space-separated delays, each a whole number with a unit of `s`, `m`, `h` or
/// `d` (as `ScheduleMessageService.parseDelayLevel`), into milliseconds per level.
pub fn parse_delay_levels(text: &str) -> Result<Vec<u64>, String> {
    let levels = text
        .split_whitespace()
        .enumerate()
        .map(|(i, level)| parse_level(level).map_err(|e| format!("level {}: {e}", i + 1)))
        .collect::<Result<Vec<u64>, String>>()?;
    if levels.is_empty() {
        return Err("no levels: write delays such as \"1s 5s 10s 1m\"".into());
    }
    if levels.len() > DELAY_LEVELS_MAX {
        return Err(format!(
            "{} levels; at most {DELAY_LEVELS_MAX}",
            levels.len()
        ));
    }
    Ok(levels)
}

fn parse_level(level: &str) -> Result<u64, String> {
    let split = level.len() - level.chars().last().map_or(0, char::len_utf8);
    let (number, unit) = level.split_at(split);
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{level:?} does not end in s, m, h or d")),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{level:?} is not a whole number of {unit}"))?;
    if n == 0 {
        return Err(format!("{level:?} is no delay"));
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("{level:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_javas_eighteen_levels() {
        let levels = parse_delay_levels(DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        assert_eq!(levels.len(), 18);
        assert_eq!(levels[0], 1_000);
        assert_eq!(levels[4], 60_000);
        assert_eq!(levels[17], 7_200_000);
        assert_eq!(
            parse_delay_levels("100ms").unwrap_err(),
            "level 1: \"100ms\" is not a whole number of s"
        );
        assert_eq!(
            parse_delay_levels(" 2s  1d ").unwrap(),
            vec![2_000, 86_400_000]
        );
    }

    #[test]
    fn bad_levels_are_named() {
        for (text, says) in [
            ("", "no levels"),
            ("1s 5x", "level 2: \"5x\" does not end in s, m, h or d"),
            ("1s 0m", "level 2: \"0m\" is no delay"),
            ("-1s", "level 1: \"-1s\" is not a whole number of s"),
            ("1é", "does not end in"),
        ] {
            let e = parse_delay_levels(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let many = vec!["1s"; DELAY_LEVELS_MAX + 1].join(" ");
        assert!(parse_delay_levels(&many).unwrap_err().contains("at most"));
    }
}

//! **Failed but read**: a send reported as definitely failed (`fail`: the broker refused
//! it) is never delivered or read. A send whose outcome is unknown (`info`) may appear;
//! that is counted as recovered (the `counted` module).

use super::{Observed, Report};

pub(super) fn check(o: &Observed, r: &mut Report) {
    r.failed_but_read = o
        .seen_values
        .iter()
        .filter(|v| o.failed.contains(*v))
        .map(|v| v.to_string())
        .collect();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, q};
    use crate::checker::{check, LossAllowance};

    #[test]
    fn a_refused_send_must_not_appear() {
        let mut h = base();
        h.send_invoke(10, "p1", "refused");
        h.send_fail(11, "p1", "refused", "MESSAGE_ILLEGAL");
        for i in 0..5 {
            h.read(300, "n1", &format!("v{i}"), q(0), i);
        }
        assert!(check(&h, LossAllowance::None, false).valid);
        h.read(300, "n1", "refused", q(0), 5);
        let r = check(&h, LossAllowance::None, false);
        assert!(!r.valid);
        assert_eq!(r.failed_but_read, vec!["refused"]);
    }
}

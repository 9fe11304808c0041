//! **Unexpected**: nothing is delivered or read that was never sent (a broker does not
//! invent messages, nor serve another queue's bytes as one).

use super::{Observed, Report};

pub(super) fn check(o: &Observed, r: &mut Report) {
    r.unexpected = o
        .seen_values
        .iter()
        .filter(|v| !o.attempted.contains(*v))
        .map(|v| v.to_string())
        .collect();
}

#[cfg(test)]
mod tests {
    use crate::checker::fixtures::{base, deliver_all, q};
    use crate::checker::{check, LossAllowance};

    #[test]
    fn catches_a_message_never_sent_wherever_it_is_seen() {
        let mut h = base();
        deliver_all(&mut h, 5);
        assert!(check(&h, LossAllowance::Tail, false).unexpected.is_empty());
        h.deliver(200, "c1", "G", "invented", q(1), 0);
        h.read(300, "n1", "read-only", q(1), 1);
        let r = check(&h, LossAllowance::Tail, false);
        assert!(!r.valid);
        assert_eq!(r.unexpected, vec!["invented", "read-only"]);
    }
}

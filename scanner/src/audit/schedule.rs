//! The test schedule of one host: every probe's tests in one numbered sequence, and how they
//! are dealt to the first session and to fresh ones.

use crate::probes::{HostFacts, PROBES, Placement, Probe, TestSpec};

/// One test to run, with its place in plan order and the probe that runs and judges it.
#[derive(Clone)]
pub(super) struct PlannedTest {
    /// Its place in plan order (results are put back in this order).
    pub(super) index: usize,
    /// The probe it belongs to.
    pub(super) probe: &'static dyn Probe,
    /// What it sends.
    pub(super) spec: TestSpec,
    /// Whether it already ran in a session the server desynchronised (it runs again once).
    pub(super) desync_retried: bool,
    /// Whether it already ran in a session a gate deferred (it runs again once).
    pub(super) gate_retried: bool,
}

/// Plans every probe's tests, numbered in one sequence, and splits them into the first
/// session's tests and those spread over fresh sessions.
pub(super) fn plan_tests(facts: &HostFacts<'_>) -> (Vec<PlannedTest>, Vec<PlannedTest>) {
    PROBES
        .iter()
        .flat_map(|&probe| probe.plan(facts).into_iter().map(move |spec| (probe, spec)))
        .enumerate()
        .map(|(index, (probe, spec))| PlannedTest {
            index,
            probe,
            spec,
            desync_retried: false,
            gate_retried: false,
        })
        .partition(|t| t.probe.placement() == Placement::First)
}

/// Deals the tests out to sessions: the first session's own tests, topped up with spread tests
/// to `per_session`, and the remaining spread tests in as few fresh sessions of at most
/// `per_session` as will hold them, sized evenly (25 tests make 7, 6, 6, 6 rather than
/// 8, 8, 8, 1: the number of sessions, not their length, sets how long a slow host takes).
/// The audit starts that many fresh sessions, which then take the tests from one pool.
pub(super) fn deal<T>(
    mut first: Vec<T>,
    spread: Vec<T>,
    per_session: usize,
) -> (Vec<T>, Vec<Vec<T>>) {
    let per_session = per_session.max(1);
    let mut spread = spread.into_iter();
    let room = per_session.saturating_sub(first.len());
    first.extend(spread.by_ref().take(room));
    let rest: Vec<T> = spread.collect();
    let sessions = rest.len().div_ceil(per_session);
    let mut chunks = Vec::with_capacity(sessions);
    let mut rest = rest.into_iter();
    for i in 0..sessions {
        // What is left, shared by the sessions still to fill, rounded up.
        let size = rest.len().div_ceil(sessions - i);
        chunks.push(rest.by_ref().take(size).collect());
    }
    (first, chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` tests as (index, spread) pairs.
    fn planned(n: usize, spread: bool) -> Vec<(usize, bool)> {
        (0..n).map(|index| (index, spread)).collect()
    }

    fn sizes(first: usize, relay: usize, per_session: usize) -> (usize, Vec<usize>) {
        let (f, chunks) = deal(planned(first, false), planned(relay, true), per_session);
        (f.len(), chunks.iter().map(Vec::len).collect())
    }

    #[test]
    fn the_first_session_is_topped_up_and_the_rest_dealt_evenly() {
        // The campus case: 4 probes and 25 relay vectors.
        assert_eq!(sizes(4, 25, 8), (8, vec![7, 7, 7]));
        assert_eq!(sizes(4, 26, 8), (8, vec![8, 7, 7]));
        assert_eq!(sizes(4, 29, 8), (8, vec![7, 6, 6, 6]));
        assert_eq!(sizes(4, 3, 8), (7, vec![]));
        // More probes than fit: the first session keeps them all, no relay test joins.
        assert_eq!(sizes(9, 5, 8), (9, vec![5]));
        assert_eq!(sizes(0, 0, 8), (0, vec![]));
        assert_eq!(sizes(2, 10, 1), (2, vec![1; 10]));
    }

    #[test]
    fn every_test_is_dealt_once_in_plan_order() {
        let (first, chunks) = deal(planned(3, false), planned(40, true), 6);
        let relay: Vec<usize> = first
            .iter()
            .filter(|(_, spread)| *spread)
            .chain(chunks.iter().flatten())
            .map(|(index, _)| *index)
            .collect();
        assert_eq!(relay, (0..40).collect::<Vec<_>>());
        assert!(chunks.iter().all(|c| c.len() <= 6));
    }
}

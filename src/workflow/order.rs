//! Job ordering by `needs`.

use super::model::{JobId, Pos, Workflow};

/// Every job in an order where each job comes after the jobs it needs; among jobs that are ready
/// at the same time, file order wins. Unknown `needs` are ignored (the loader rejects them) and
/// jobs in a cycle (also rejected by the loader) are appended in file order.
pub fn job_order(workflow: &Workflow) -> Vec<&JobId> {
    order_of(workflow, |_| true)
}

/// `job` and every job it needs, directly or transitively, in [`job_order`]. Empty when `job`
/// does not exist.
pub fn with_needs<'w>(workflow: &'w Workflow, job: &str) -> Vec<&'w JobId> {
    if !workflow.jobs.contains_key(job) {
        return Vec::new();
    }
    let mut wanted = vec![false; workflow.jobs.len()];
    let mut stack = vec![job];
    while let Some(id) = stack.pop() {
        let Some((i, _, j)) = workflow.jobs.get_full(id) else {
            continue;
        };
        if std::mem::replace(&mut wanted[i], true) {
            continue;
        }
        stack.extend(j.needs.iter().map(|n| n.value.as_str()));
    }
    order_of(workflow, |i| wanted[i])
}

fn order_of(workflow: &Workflow, include: impl Fn(usize) -> bool) -> Vec<&JobId> {
    let n = workflow.jobs.len();
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    loop {
        // First job in file order whose needs are all done; O(n²) is fine for workflow sizes.
        let next = workflow
            .jobs
            .iter()
            .enumerate()
            .find(|(i, (_, job))| {
                include(*i)
                    && !done[*i]
                    && job.needs.iter().all(|need| {
                        workflow
                            .jobs
                            .get_index_of(&need.value)
                            .is_none_or(|j| done[j])
                    })
            })
            .map(|(i, _)| i);
        match next {
            Some(i) => {
                done[i] = true;
                if let Some((id, _)) = workflow.jobs.get_index(i) {
                    out.push(id);
                }
            }
            None => break,
        }
    }
    for (i, id) in workflow.jobs.keys().enumerate() {
        if include(i) && !done[i] {
            out.push(id);
        }
    }
    out
}

/// A `needs` cycle as job ids (first = last) and the position of the `needs` entry that closes
/// it, or `None`.
pub(crate) fn find_cycle(workflow: &Workflow) -> Option<(Vec<String>, Pos)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    let n = workflow.jobs.len();
    let mut state = vec![State::New; n];
    for root in 0..n {
        if state[root] != State::New {
            continue;
        }
        // Iterative DFS: (job index, next need to visit).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = State::Active;
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            let job = workflow.jobs.get_index(i).map(|(_, j)| j)?;
            let Some(need) = job.needs.get(*next) else {
                state[i] = State::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            let Some(j) = workflow.jobs.get_index_of(&need.value) else {
                continue;
            };
            match state[j] {
                State::New => {
                    state[j] = State::Active;
                    stack.push((j, 0));
                }
                State::Active => {
                    let from = stack.iter().position(|(k, _)| *k == j).unwrap_or(0);
                    let mut ids: Vec<String> = stack[from..]
                        .iter()
                        .filter_map(|(k, _)| workflow.jobs.get_index(*k).map(|(id, _)| id.clone()))
                        .collect();
                    ids.push(need.value.clone());
                    return Some((ids, need.pos));
                }
                State::Done => {}
            }
        }
    }
    None
}

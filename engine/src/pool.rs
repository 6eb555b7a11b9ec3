//! Parallel passes on candle's barrier pool in which every thread writes its own part of the
//! output through a `&mut` slice, so no raw pointer crosses threads.
//!
//! The pool runs one closure on every thread (`Fn + Sync`), so the closure cannot capture a
//! `&mut` part per thread. Instead the output is cut into disjoint `&mut` parts that reach
//! their threads through a `Mutex`: [`per_thread`] and [`grabs`] cut them before the pass,
//! one `Mutex` per part, emptied by the one thread that is dealt the part; [`units`] cuts
//! them during the pass, under one `Mutex`, on the thread that will write them. Either way a
//! thread locks once per grab of work (about eight grabs per thread and pass), never per work
//! unit, and the parts are the same sizes as the work candle itself would deal out (which
//! thread takes which part may differ, as with candle's own cursor).

use candle_core::utils::barrier_pool;
use std::sync::{Mutex, PoisonError};

/// Threads in a pass: the pool's workers and the calling thread.
pub fn threads() -> usize {
    barrier_pool().n_workers() + 1
}

/// Work units per grab when candle's `execute_chunked` deals out `total` of them (its own
/// formula: about eight grabs per thread), so that a pass split with it runs as candle's would.
pub fn chunk(total: usize) -> usize {
    total.div_ceil(threads() * 8).max(1)
}

/// `f(g, part)` for each `part` of `parts`, dealt from the pool's shared cursor as
/// `execute_chunked` deals grabs: a thread that finishes early takes the next part.
///
/// Parts should be the grabs of [`chunk`] (at most eight per thread): `execute_chunked` then
/// deals them one at a time.
pub fn grabs<P: Send>(parts: Vec<P>, f: impl Fn(usize, P) + Sync) {
    let parts: Vec<Mutex<Option<P>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    barrier_pool().execute_chunked(parts.len(), |gs| {
        for g in gs {
            // The guard drops at the end of this statement: `f` runs unlocked.
            let part = take(&parts[g]);
            if let Some(part) = part {
                f(g, part);
            }
        }
    });
}

/// `f(tid, part)` with `parts[tid]` on thread `tid`, for the pool's static split: at most
/// one part per thread ([`threads`]); threads beyond the parts do nothing.
pub fn per_thread<P: Send>(parts: Vec<P>, f: impl Fn(usize, P) + Sync) {
    assert!(parts.len() <= threads(), "more parts than threads");
    let parts: Vec<Mutex<Option<P>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    barrier_pool().execute(|tid| {
        if let Some(part) = parts.get(tid).and_then(take) {
            f(tid, part);
        }
    });
}

/// The part in `slot`, once. A lock is poisoned only by a panic while it is held, and no
/// code runs under these locks but `take`, so the poison flag carries no meaning here.
fn take<P>(slot: &Mutex<Option<P>>) -> Option<P> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// `f(u, out)` for every work unit `u` of a pass whose outputs are `outs`, each cut into
/// units of `unit` elements (an output's last unit may be shorter), numbered on across the
/// outputs in order. The units are dealt as `execute_chunked(units, ..)` deals them.
///
/// Decode runs about a hundred of these passes per token, so the output is cut as the pass
/// goes: each grab locks the one [`Cutter`] and cuts its own spans off the front, on the
/// thread that will write them. Cutting every grab's spans on the calling thread before the
/// pass measured slower on decode's small passes (a few allocations, and cache lines passed
/// from thread to thread), about 2 µs in 20.
pub fn units<'a, T: Send + 'a>(
    outs: impl IntoIterator<Item = &'a mut [T]>,
    unit: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    assert!(unit > 0, "a work unit needs at least one output");
    let outs: Vec<&mut [T]> = outs.into_iter().collect();
    let total: usize = outs.iter().map(|o| o.len().div_ceil(unit)).sum();
    let chunk = chunk(total);
    let cutter = Mutex::new(Cutter::new(outs, unit));
    // candle deals grab numbers; whoever is dealt one cuts the next grab. Grabs are cut in
    // order under the lock, so every dealt number yields exactly one grab.
    barrier_pool().execute_chunked(total.div_ceil(chunk), |grabs| {
        let mut spans = Vec::new();
        for _ in grabs {
            cutter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .cut(chunk, &mut spans);
            for (first, span) in spans.drain(..) {
                for (i, out) in span.chunks_mut(unit).enumerate() {
                    f(first + i, out);
                }
            }
        }
    });
}

/// Cuts outputs into consecutive work units, a grab at a time, front to back. A lock held
/// only while it cuts is never poisoned by a panic in the work itself.
struct Cutter<'a, T> {
    outs: std::vec::IntoIter<&'a mut [T]>,
    /// What is left of the output being cut.
    rest: &'a mut [T],
    /// Elements per unit.
    unit: usize,
    /// The number of the next unit.
    first: usize,
}

impl<'a, T> Cutter<'a, T> {
    fn new(outs: Vec<&'a mut [T]>, unit: usize) -> Self {
        Self {
            outs: outs.into_iter(),
            rest: &mut [],
            unit,
            first: 0,
        }
    }

    /// Cuts the next `chunk` units (fewer at the end) into `spans`: for each output they lie
    /// in, the number of their first unit and the span they cover.
    fn cut(&mut self, chunk: usize, spans: &mut Vec<(usize, &'a mut [T])>) {
        let mut left = chunk;
        while left > 0 {
            if self.rest.is_empty() {
                match self.outs.next() {
                    Some(out) => self.rest = out,
                    None => return,
                }
                continue;
            }
            let n = left.min(self.rest.len().div_ceil(self.unit));
            let len = (n * self.unit).min(self.rest.len());
            let (span, tail) = std::mem::take(&mut self.rest).split_at_mut(len);
            spans.push((self.first, span));
            self.rest = tail;
            self.first += n;
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each output element holds the unit that wrote it, as numbered from the lengths.
    fn expected(lens: &[usize], unit: usize) -> Vec<Vec<usize>> {
        let mut first = 0;
        lens.iter()
            .map(|&len| {
                let v = (0..len).map(|i| first + i / unit).collect();
                first += len.div_ceil(unit);
                v
            })
            .collect()
    }

    #[test]
    fn the_cutter_gives_every_unit_its_own_elements_in_grabs_of_chunk() {
        for (lens, unit) in [
            (vec![40, 0, 16, 33], 16),
            (vec![1536, 256, 256], 16),
            (vec![7], 3),
            (vec![5, 5, 5], 1),
            (vec![0, 0], 4),
        ] {
            let total: usize = lens.iter().map(|l: &usize| l.div_ceil(unit)).sum();
            for chunk in [1, 2, 3, 5, total.max(1), total + 4] {
                let mut outs: Vec<Vec<usize>> = lens.iter().map(|&l| vec![usize::MAX; l]).collect();
                let mut cutter =
                    Cutter::new(outs.iter_mut().map(Vec::as_mut_slice).collect(), unit);
                let mut spans = Vec::new();
                for g in 0..total.div_ceil(chunk) {
                    cutter.cut(chunk, &mut spans);
                    let mut units = 0;
                    for (first, span) in spans.drain(..) {
                        for (i, out) in span.chunks_mut(unit).enumerate() {
                            let u = first + i;
                            assert!(u / chunk == g, "unit {u} in grab {g} (chunk {chunk})");
                            out.fill(u);
                            units += 1;
                        }
                    }
                    assert_eq!(units, chunk.min(total - g * chunk), "grab {g}");
                }
                cutter.cut(chunk, &mut spans);
                assert!(spans.is_empty(), "units left after the last grab");
                drop(cutter);
                assert_eq!(outs, expected(&lens, unit), "{lens:?} / {unit} by {chunk}");
            }
        }
    }

    #[test]
    fn a_pass_writes_each_unit_once() {
        let lens = [100, 3, 0, 64];
        let mut outs: Vec<Vec<usize>> = lens.iter().map(|&l| vec![usize::MAX; l]).collect();
        units(outs.iter_mut().map(Vec::as_mut_slice), 8, |u, out| {
            out.fill(u)
        });
        assert_eq!(outs, expected(&lens, 8));

        let n = threads();
        let mut out = vec![0usize; 3 * n - 1];
        per_thread(out.chunks_mut(3).collect(), |tid, part| part.fill(tid + 1));
        let want: Vec<usize> = (0..3 * n - 1).map(|i| i / 3 + 1).collect();
        assert_eq!(out, want);
    }
}

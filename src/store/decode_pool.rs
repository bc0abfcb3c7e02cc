//! Decoding a store's records on several threads, in the order they were read.
//!
//! Start-up reads every record once, and decoding them (MessagePack into the model's types:
//! UTF-8 checks, one allocation per string) is most of it. The read itself is a sequential
//! scan, cheap next to the decoding, so one thread reads and copies raw records into batches,
//! and worker threads decode whole batches; the results are put back in read order as they
//! arrive, so at most a few batches are ever held twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, sync_channel};

use parking_lot::Mutex;

/// Records per batch: enough that handing a batch over costs little next to decoding it (a
/// record is several hundred bytes), few enough that the batches in flight stay small.
pub(crate) const BATCH: usize = 256;

/// Below this many records, decoding stays on the calling thread: starting threads would cost
/// more than it saves.
pub(crate) const PARALLEL_FROM: usize = 4 * BATCH;

/// Raw records, keys and values back to back in one buffer each.
struct Batch {
    index: usize,
    keys: String,
    values: Vec<u8>,
    /// Where each record's key and value end.
    ends: Vec<(usize, usize)>,
}

impl Batch {
    fn new(index: usize) -> Self {
        Self {
            index,
            keys: String::new(),
            values: Vec::new(),
            ends: Vec::with_capacity(BATCH),
        }
    }

    fn push(&mut self, key: &str, value: &[u8]) {
        self.keys.push_str(key);
        self.values.extend_from_slice(value);
        self.ends.push((self.keys.len(), self.values.len()));
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Decodes the records in order, stopping at the first failure.
    fn decode<T, E>(&self, decode: &impl Fn(&str, &[u8]) -> Result<T, E>) -> Result<Vec<T>, E> {
        let mut out = Vec::with_capacity(self.len());
        let (mut key_at, mut value_at) = (0, 0);
        for &(key_end, value_end) in &self.ends {
            out.push(decode(
                &self.keys[key_at..key_end],
                &self.values[value_at..value_end],
            )?);
            (key_at, value_at) = (key_end, value_end);
        }
        Ok(out)
    }
}

/// Puts decoded batches back in order as they arrive, and keeps the first failure in order.
struct Collector<T, E> {
    out: Vec<T>,
    next: usize,
    early: BTreeMap<usize, Result<Vec<T>, E>>,
    /// Set at the first failure in order; from then on nothing more is collected.
    stopped: bool,
    /// That failure, until it is handed to the reader to stop it.
    failed: Option<E>,
}

impl<T, E> Collector<T, E> {
    fn take(&mut self, index: usize, batch: Result<Vec<T>, E>) {
        if self.stopped {
            return;
        }
        self.early.insert(index, batch);
        while let Some(batch) = self.early.remove(&self.next) {
            self.next += 1;
            match batch {
                Ok(records) => self.out.extend(records),
                Err(e) => {
                    // every batch before this one decoded: this is the first failure in order
                    self.failed = Some(e);
                    self.stopped = true;
                    self.early.clear();
                    return;
                }
            }
        }
    }
}

/// Where a reader passes each record, key and value; an error tells it to stop.
pub(crate) type Sink<'a, E> = dyn FnMut(&str, &[u8]) -> Result<(), E> + 'a;

/// Decodes every record that `read` passes to its sink with `decode`, on up to `threads`
/// worker threads, and returns them in the order `read` passed them.
///
/// `read` runs on the calling thread; the sink it is given never fails unless a record already
/// failed to decode, so `read` can stop early with the sink's error. The result is what decoding
/// on one thread would give: the records in order, or the first error in read order, where an
/// error of `read` itself comes after every record it passed before failing.
pub(crate) fn decode_in_order<T, E, R, D>(
    threads: usize,
    capacity: usize,
    read: R,
    decode: D,
) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send,
    R: FnOnce(&mut Sink<'_, E>) -> Result<(), E>,
    D: Fn(&str, &[u8]) -> Result<T, E> + Sync,
{
    if threads <= 1 || capacity < PARALLEL_FROM {
        let mut out = Vec::with_capacity(capacity);
        read(&mut |key, value| {
            out.push(decode(key, value)?);
            Ok(())
        })?;
        return Ok(out);
    }
    std::thread::scope(|scope| {
        // Workers share the only receiver: when they are all gone (a panic included), sending
        // fails instead of blocking the reader.
        let (jobs, job_rx) = sync_channel::<Batch>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = std::sync::mpsc::channel::<(usize, Result<Vec<T>, E>)>();
        for _ in 0..threads {
            let (job_rx, done_tx, decode) = (Arc::clone(&job_rx), done_tx.clone(), &decode);
            scope.spawn(move || work(&job_rx, &done_tx, decode));
        }
        drop((job_rx, done_tx));
        let mut collector = Collector {
            out: Vec::with_capacity(capacity),
            next: 0,
            early: BTreeMap::new(),
            stopped: false,
            failed: None,
        };
        let mut batch = Batch::new(0);
        let mut sent = 0usize;
        let mut send = |batch: Batch, collector: &mut Collector<T, E>| -> bool {
            sent += 1;
            if jobs.send(batch).is_err() {
                return false;
            }
            while let Ok((index, decoded)) = done.try_recv() {
                collector.take(index, decoded);
            }
            true
        };
        let mut stopped = false;
        let read_result = read(&mut |key, value| {
            if let Some(e) = collector.failed.take() {
                // stop reading: this is the first failure in order, and comes back below
                return Err(e);
            }
            batch.push(key, value);
            if batch.len() == BATCH {
                let next = Batch::new(batch.index + 1);
                let full = std::mem::replace(&mut batch, next);
                stopped = !send(full, &mut collector);
            }
            Ok(())
        });
        if batch.len() > 0 && !stopped {
            send(batch, &mut collector);
        }
        drop(jobs);
        for (index, decoded) in done {
            collector.take(index, decoded);
        }
        if let Some(e) = collector.failed {
            return Err(e);
        }
        // `read`'s error is its own, or the first failure, which the sink handed it
        read_result?;
        debug_assert_eq!(collector.next, sent, "a worker stopped without a result");
        Ok(collector.out)
    })
}

/// A worker: decodes batches until there are no more.
fn work<T, E>(
    jobs: &Mutex<Receiver<Batch>>,
    done: &Sender<(usize, Result<Vec<T>, E>)>,
    decode: &impl Fn(&str, &[u8]) -> Result<T, E>,
) {
    loop {
        let job = jobs.lock().recv();
        let Ok(batch) = job else { return };
        if done.send((batch.index, batch.decode(decode))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `0..n` as `(key, value)`: key `r/000042`, value the number's bytes.
    fn records(n: usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("r/{i:06}"), (i as u64).to_le_bytes().to_vec()))
            .collect()
    }

    /// Fails on a value that is not eight bytes, naming the key.
    fn decode(key: &str, value: &[u8]) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            value.try_into().map_err(|_| format!("{key}: length"))?,
        ))
    }

    fn run(threads: usize, recs: &[(String, Vec<u8>)]) -> Result<Vec<u64>, String> {
        decode_in_order(
            threads,
            recs.len(),
            |sink| {
                for (k, v) in recs {
                    sink(k, v)?;
                }
                Ok(())
            },
            decode,
        )
    }

    #[test]
    fn every_thread_count_gives_the_records_in_read_order() {
        for n in [
            0,
            1,
            BATCH - 1,
            BATCH,
            PARALLEL_FROM,
            PARALLEL_FROM + 1,
            10 * BATCH + 17,
        ] {
            let recs = records(n);
            let want: Vec<u64> = (0..n as u64).collect();
            for threads in [0, 1, 2, 3, 8] {
                assert_eq!(
                    run(threads, &recs).unwrap(),
                    want,
                    "n {n} threads {threads}"
                );
            }
        }
    }

    #[test]
    fn the_first_failure_in_read_order_is_reported() {
        let mut recs = records(20 * BATCH);
        // two bad records in different batches: the earlier one must win however the
        // batches finish
        for at in [13 * BATCH + 5, 4 * BATCH + 200] {
            recs[at].1 = vec![1, 2, 3];
        }
        for threads in [1, 2, 4] {
            let err = run(threads, &recs).unwrap_err();
            assert_eq!(
                err,
                format!("r/{:06}: length", 4 * BATCH + 200),
                "threads {threads}"
            );
        }
    }

    #[test]
    fn a_read_error_comes_after_the_records_read_before_it() {
        let recs = records(10 * BATCH);
        let read_fails_at = |stop: usize, bad: Option<usize>| {
            let mut recs = recs.clone();
            if let Some(b) = bad {
                recs[b].1.clear();
            }
            move |threads: usize| {
                decode_in_order(
                    threads,
                    recs.len(),
                    |sink| {
                        for (i, (k, v)) in recs.iter().enumerate() {
                            if i == stop {
                                return Err("read failed".to_owned());
                            }
                            sink(k, v)?;
                        }
                        Ok(())
                    },
                    decode,
                )
            }
        };
        for threads in [1, 2, 4] {
            // no bad record before the read error: the read error
            let run = read_fails_at(6 * BATCH + 3, Some(8 * BATCH));
            assert_eq!(run(threads).unwrap_err(), "read failed");
            // a bad record before it, even in the unfinished last batch: that record
            let run = read_fails_at(6 * BATCH + 3, Some(6 * BATCH + 1));
            assert_eq!(
                run(threads).unwrap_err(),
                format!("r/{:06}: length", 6 * BATCH + 1)
            );
        }
    }

    #[test]
    fn a_panicking_decoder_propagates_instead_of_hanging() {
        let recs = records(8 * BATCH);
        let result = std::panic::catch_unwind(|| {
            decode_in_order(
                2,
                recs.len(),
                |sink| {
                    for (k, v) in &recs {
                        sink(k, v)?;
                    }
                    Ok::<(), String>(())
                },
                |_, _| -> Result<u64, String> { panic!("decoder bug") },
            )
        });
        assert!(result.is_err());
    }
}

//! Splitting work over a few threads (the generator uses every CPU at boot).

/// Applies `work` to chunks of `items` of at least `min_chunk` items, on up to `threads`
/// threads, and concatenates the results in order. One chunk runs on the calling thread:
/// a small host never pays for a thread.
pub fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    min_chunk: usize,
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    let chunk_len = items.len().div_ceil(threads.max(1)).max(min_chunk).max(1);
    if items.len() <= chunk_len {
        return work(items);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk_len)
            .map(|chunk| scope.spawn(|| work(chunk)))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a worker does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_covers_every_item() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 3, 8] {
            let doubled = map_chunks(&items, threads, 64, |c| c.iter().map(|i| i * 2).collect());
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(map_chunks(&[] as &[u32], 4, 64, |c| c.to_vec()).is_empty());
    }
}

//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the same entry points
//! the fuzzers run, so every input that once found new code paths is checked by `make test`
//! without a fuzzer. A crash found by `make fuzz` is fixed, then its input is added here.

use std::path::Path;

#[test]
fn every_corpus_input_runs_clean() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in left4me_fuzz_targets::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "{}: the corpus of {name} is empty",
            dir.display()
        );
        for input in &inputs {
            target(&std::fs::read(input).unwrap());
        }
        eprintln!("{name}: {} inputs replayed", inputs.len());
    }
}

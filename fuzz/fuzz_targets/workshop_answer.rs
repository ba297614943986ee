#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| left4me_fuzz_targets::workshop_answer(data));

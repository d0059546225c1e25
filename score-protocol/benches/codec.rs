//! The float32 codec on a 4,096 × 100 body (1.6 MB), both directions.
//!
//! `cargo bench -p score-protocol`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use score_protocol::codec;

fn bench(c: &mut Criterion) {
    let values: Vec<f32> = (0..409_600).map(|i| i as f32 * 1e-3).collect();
    let bytes = codec::encode(&values);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_1.6MB", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            codec::encode_into(black_box(&values), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode_1.6MB_unaligned", |b| {
        let mut skewed = vec![0u8];
        skewed.extend_from_slice(&bytes);
        let mut out = Vec::with_capacity(values.len());
        b.iter(|| {
            out.clear();
            codec::decode_into(black_box(&skewed[1..]), &mut out).expect("whole");
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

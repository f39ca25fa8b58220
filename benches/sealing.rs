//! Cost of sealing at rest (`helpline::store::sealed`): seal then open one typical chat message
//! (200 bytes of text, XChaCha20-Poly1305, the associated data naming its place and row), as the relay
//! does for every message it stores (seal) and every history read (open). Also a batch of 128, the
//! relay's largest multi-row `INSERT`. Compare with the relay's per-message time in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use helpline::store::keys::KeyFile;
use helpline::store::sealed::{open_with, seal_with};

fn message() -> String {
    // 200 bytes of Romanian text (multi-byte letters included), as a caller types it.
    let base = "Bună, am 12 ani și mi-e frică să merg acasă. Tata a băut iar și a lovit-o pe mama aseară. ";
    let mut text = String::new();
    while text.len() < 200 {
        text.push_str(base);
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn sealing(c: &mut Criterion) {
    let keys = KeyFile::generate(0);
    let text = message();
    let mut group = c.benchmark_group("sealing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal_200B", |b| {
        b.iter(|| {
            seal_with(&keys, "messages.body", black_box("0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:17"), black_box(&text)).expect("sealed")
        })
    });
    let sealed = seal_with(&keys, "messages.body", "0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:17", &text).expect("sealed");
    group.bench_function("open_200B", |b| {
        b.iter(|| {
            open_with(&keys, "messages.body", black_box("0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:17"), black_box(&sealed)).expect("opened")
        })
    });
    group.bench_function("seal_and_open_200B", |b| {
        b.iter(|| {
            let s = seal_with(&keys, "messages.body", "0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:17", black_box(&text)).expect("sealed");
            open_with(&keys, "messages.body", "0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:17", &s).expect("opened")
        })
    });
    group.throughput(Throughput::Elements(128));
    group.bench_function("seal_batch_128x200B", |b| {
        b.iter(|| {
            (0..128)
                .map(|i| seal_with(&keys, "messages.body", &format!("0193a3c4-7e55-7c2a-9d11-4c1f2e3a4b5c:{i}"), &text).expect("sealed"))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, sealing);
criterion_main!(benches);

//! W1 and W2: write a whole array, then read it all back, on Atlas, zarrs and the raw codec.

use std::path::PathBuf;

use crate::baseline::{RawCodec, split_chunks};
use crate::case::{Case, Field, Sample, cubic, smooth};
use crate::measure::{Best, ChildMemory, dir_bytes, fresh_dir, mb_per_s, reset_peak, settle_disk, time};
use crate::report::Row;
use crate::{Opts, atlas_side, zarrs_side};

/// Runs one case: a write row and a read row.
pub fn run(case: &Case, opts: &Opts) -> Vec<Row> {
    match case.field {
        Field::Cubic => run_typed::<u16>(case, &cubic(&case.shape), opts),
        Field::Smooth => run_typed::<f32>(case, &smooth(&case.shape), opts),
    }
}

pub fn atlas_dir(opts: &Opts, case: &Case) -> PathBuf {
    opts.root.join(format!("{}-atlas", case.id))
}

pub fn zarrs_dir(opts: &Opts, case: &Case) -> PathBuf {
    opts.root.join(format!("{}-zarrs", case.id))
}

/// The raw codec chain equal to the case's Atlas settings.
pub fn chain(case: &Case) -> RawCodec {
    RawCodec { codec: case.codec, shuffle_elem_bytes: case.shuffle.then_some(case.elem_bytes()) }
}

fn run_typed<T: Sample>(case: &Case, data: &[T], opts: &Opts) -> Vec<Row> {
    let name = format!("{} {} {}", &case.id[..2].to_uppercase(), case.shape_label(), case.codec_label());
    let bytes = case.array_bytes();
    let mut write = Row::new(&name, "write all", bytes, bytes);
    let mut read = Row::new(&name, "read all", bytes, bytes);
    let zarrs = zarrs_side::supports(case);

    // Raw codec inputs: the same chunk bytes Atlas stores, and their encoded form.
    let chain = chain(case);
    let chunks = split_chunks(bytemuck::cast_slice(data), &case.shape, &case.chunk, case.elem_bytes());
    let encoded = chain.encode_all(&chunks);
    write.raw_disk = Some(encoded.iter().map(|e| e.len() as u64).sum());
    let mut raw_out = vec![1u8; bytes as usize];
    let mut atlas_out = vec![T::zero(); case.elems()];

    let (mut raw_enc, mut raw_dec) = (Best::default(), Best::default());
    let (mut atlas_write, mut atlas_read, mut atlas_alloc) = (Best::default(), Best::default(), Best::default());
    let mut atlas_unverified = Best::default();
    let (mut zarrs_write, mut zarrs_read) = (Best::default(), Best::default());
    let mut flush_share = 0.0;
    let mut rounds = opts.rounds();
    while rounds.next() {
        raw_enc.add(time(|| chain.encode_all(&chunks)));
        raw_dec.add(time(|| chain.decode_all(&encoded, case.chunk_bytes(), &mut raw_out)));

        // Atlas: write + flush into a fresh store, then read that store back.
        let dir = fresh_dir(&opts.root, &format!("{}-atlas", case.id));
        let (store, array) = atlas_side::create(&dir, case, T::DTYPE);
        settle_disk();
        let (w, f) = atlas_side::write(&store, &array, case, data);
        if atlas_write.get().is_none_or(|best| w + f < best) {
            flush_share = f.as_secs_f64() / (w + f).as_secs_f64();
        }
        atlas_write.add(w + f);
        drop((store, array));
        let array = atlas_side::open(&dir);
        atlas_read.add(time(|| atlas_side::read_into(&array, &case.shape, &mut atlas_out, true)));
        atlas_alloc.add(time(|| atlas_side::read::<T>(&array, &case.shape)));
        // Opened again, so that this read too is the first through its map.
        let array = atlas_side::open(&dir);
        atlas_unverified.add(time(|| atlas_side::read_into(&array, &case.shape, &mut atlas_out, false)));

        if zarrs {
            let array = zarrs_side::create::<T>(&fresh_dir(&opts.root, &format!("{}-zarrs", case.id)), case);
            settle_disk();
            zarrs_write.add(time(|| zarrs_side::write(&array, data)));
            zarrs_read.add(time(|| zarrs_side::read::<T>(&array)));
        }
    }
    write.rounds = rounds.done();
    read.rounds = rounds.done();

    assert!(same(&atlas_out, data), "Atlas read back what it wrote");
    drop((chunks, encoded, raw_out, atlas_out));

    (write.raw, read.raw) = (raw_enc.get(), raw_dec.get());
    (write.atlas, read.atlas, read.atlas_alloc) = (atlas_write.get(), atlas_read.get(), atlas_alloc.get());
    write.atlas_disk = Some(dir_bytes(&atlas_dir(opts, case)));
    write.note = format!("Atlas time incl. flush+fsync ({:.0}% of it)", 100.0 * flush_share);
    let unverified = atlas_unverified.get().expect("measured");
    read.note = format!(
        "Atlas: read_into a reused buffer; Atlas/zarrs uses the allocating read ({:.0} MB/s); \
         without checksum verification {:.0} MB/s ({:.2}x raw)",
        mb_per_s(bytes, atlas_alloc.get().expect("measured")),
        mb_per_s(bytes, unverified),
        read.raw.expect("measured").as_secs_f64() / unverified.as_secs_f64(),
    );
    if zarrs {
        (write.zarrs, read.zarrs) = (zarrs_write.get(), zarrs_read.get());
        write.zarrs_disk = Some(dir_bytes(&zarrs_dir(opts, case)));
        assert!(same(&zarrs_side::read::<T>(&zarrs_side::open(&zarrs_dir(opts, case))), data), "zarrs round trip");
    } else {
        write.note.push_str("; zarrs has no raw LZ4 codec");
        read.note.push_str("; zarrs has no raw LZ4 codec");
    }

    if opts.rss {
        write.atlas_mem = Some(crate::child::spawn(opts, &["atlas-write", &case.id]));
        read.atlas_mem = Some(crate::child::spawn(opts, &["atlas-read", &case.id]));
        if zarrs {
            write.zarrs_mem = Some(crate::child::spawn(opts, &["zarrs-write", &case.id]));
            read.zarrs_mem = Some(crate::child::spawn(opts, &["zarrs-read", &case.id]));
        }
    }
    vec![write, read]
}

/// A child process's task for one case; prints its memory at the end.
pub fn child(task: &str, case: &Case, opts: &Opts) {
    match case.field {
        Field::Cubic => child_typed::<u16>(task, case, opts, cubic),
        Field::Smooth => child_typed::<f32>(task, case, opts, smooth),
    }
}

fn child_typed<T: Sample>(task: &str, case: &Case, opts: &Opts, generate: fn(&[u64]) -> Vec<T>) {
    let base = ChildMemory::now();
    let scratch = format!("child-{}-{task}", case.id);
    match task {
        "atlas-write" => {
            let data = generate(&case.shape);
            reset_peak();
            for _ in 0..opts.repeat {
                let (store, array) = atlas_side::create(&fresh_dir(&opts.root, &scratch), case, T::DTYPE);
                atlas_side::write(&store, &array, case, &data);
            }
            ChildMemory::report(base);
        }
        "atlas-read" => {
            let array = atlas_side::open(&atlas_dir(opts, case));
            for _ in 0..opts.repeat {
                std::hint::black_box(atlas_side::read::<T>(&array, &case.shape));
            }
            ChildMemory::report(base);
        }
        "atlas-read-into" | "atlas-read-into-unverified" => {
            let array = atlas_side::open(&atlas_dir(opts, case));
            let mut out = vec![T::zero(); case.elems()];
            for _ in 0..opts.repeat {
                atlas_side::read_into(&array, &case.shape, &mut out, task == "atlas-read-into");
            }
            ChildMemory::report(base);
        }
        "raw-encode" | "raw-decode" => {
            let data = generate(&case.shape);
            let chunks = split_chunks(bytemuck::cast_slice(&data), &case.shape, &case.chunk, case.elem_bytes());
            let chain = chain(case);
            let encoded = chain.encode_all(&chunks);
            let mut out = vec![1u8; case.array_bytes() as usize];
            for _ in 0..opts.repeat {
                if task == "raw-encode" {
                    std::hint::black_box(chain.encode_all(&chunks));
                } else {
                    chain.decode_all(&encoded, case.chunk_bytes(), &mut out);
                }
            }
            ChildMemory::report(base);
        }
        "zarrs-write" => {
            let data = generate(&case.shape);
            reset_peak();
            for _ in 0..opts.repeat {
                let array = zarrs_side::create::<T>(&fresh_dir(&opts.root, &scratch), case);
                zarrs_side::write(&array, &data);
            }
            ChildMemory::report(base);
        }
        "zarrs-read" => {
            let array = zarrs_side::open(&zarrs_dir(opts, case));
            for _ in 0..opts.repeat {
                std::hint::black_box(zarrs_side::read::<T>(&array));
            }
            ChildMemory::report(base);
        }
        other => panic!("unknown task {other}"),
    }
    let _ = std::fs::remove_dir_all(opts.root.join(scratch));
}

/// Bitwise equality of two element slices.
fn same<T: Sample>(a: &[T], b: &[T]) -> bool {
    bytemuck::cast_slice::<T, u8>(a) == bytemuck::cast_slice::<T, u8>(b)
}

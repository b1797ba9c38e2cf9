//! The arrays the bulk workloads (W1, W2) write and read: shape, chunks, codec, and the
//! data itself, generated the same way in the parent and in every child process.

use atlas::{Codec, Shuffle};

/// The element types the bench uses, with what each library needs to know of them.
pub trait Sample: atlas::Element + zarrs::array::ElementOwned + bytemuck::Pod + Send + Sync + 'static {
    /// The zarrs data type of this element.
    fn zarrs_type() -> zarrs::array::DataType;
    /// The value never-written elements read as (0 for both libraries).
    fn zero() -> Self;
}

impl Sample for u16 {
    fn zarrs_type() -> zarrs::array::DataType {
        zarrs::array::data_type::uint16()
    }
    fn zero() -> Self {
        0
    }
}

impl Sample for f32 {
    fn zarrs_type() -> zarrs::array::DataType {
        zarrs::array::data_type::float32()
    }
    fn zero() -> Self {
        0.0
    }
}

/// Which generator fills the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// W1: uint16 `(x + y*y/32 + z*z*z) mod 65536`, x the last (fastest) index.
    Cubic,
    /// W2: a smooth float32 field.
    Smooth,
}

/// One array configuration of W1 or W2.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name, also how a child process is told which case to run.
    pub id: String,
    pub field: Field,
    pub shape: Vec<u64>,
    pub chunk: Vec<u64>,
    pub codec: Codec,
    pub shuffle: bool,
}

impl Case {
    pub fn elem_bytes(&self) -> usize {
        match self.field {
            Field::Cubic => 2,
            Field::Smooth => 4,
        }
    }

    pub fn elems(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }

    pub fn array_bytes(&self) -> u64 {
        (self.elems() * self.elem_bytes()) as u64
    }

    pub fn chunk_bytes(&self) -> usize {
        self.chunk.iter().product::<u64>() as usize * self.elem_bytes()
    }

    pub fn shuffle_setting(&self) -> Shuffle {
        if self.shuffle { Shuffle::On } else { Shuffle::Off }
    }

    /// `zstd3+shuf`, `lz4`, `none`...
    pub fn codec_label(&self) -> String {
        let codec = match self.codec {
            Codec::Zstd { level } => format!("zstd{level}"),
            other => other.name().to_string(),
        };
        if self.shuffle { format!("{codec}+shuf") } else { codec }
    }

    pub fn shape_label(&self) -> String {
        let dims = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join("x");
        format!("{} chunks {}", dims(&self.shape), dims(&self.chunk))
    }
}

/// W1's cases at `scale` (a linear factor on 512^3): zstd 3 and none, chunks 64^3 and 256^3.
/// Shuffle is on with zstd (Atlas's default for uint16) and off with none (so "none" is a
/// plain copy on both sides).
pub fn w1_cases(scale: f64) -> Vec<Case> {
    let edge = scaled(512, scale, 64);
    let mut cases = Vec::new();
    for chunk_edge in [64, 256] {
        if chunk_edge > edge {
            continue;
        }
        for (codec, shuffle) in [(Codec::Zstd { level: 3 }, true), (Codec::None, false)] {
            let mut case = Case {
                id: String::new(),
                field: Field::Cubic,
                shape: vec![edge; 3],
                chunk: vec![chunk_edge; 3],
                codec,
                shuffle,
            };
            case.id = format!("w1-c{chunk_edge}-{}", case.codec_label());
            cases.push(case);
        }
    }
    cases
}

/// W2's cases at `scale` (a linear factor on 256x512x512): chunks 64^3; zstd 1 and lz4,
/// shuffle on and off.
pub fn w2_cases(scale: f64) -> Vec<Case> {
    let shape = vec![scaled(256, scale, 64), scaled(512, scale, 64), scaled(512, scale, 64)];
    let mut cases = Vec::new();
    for codec in [Codec::Zstd { level: 1 }, Codec::Lz4] {
        for shuffle in [true, false] {
            let mut case = Case {
                id: String::new(),
                field: Field::Smooth,
                shape: shape.clone(),
                chunk: vec![64; 3],
                codec,
                shuffle,
            };
            case.id = format!("w2-{}", case.codec_label());
            cases.push(case);
        }
    }
    cases
}

/// The case W4 reads boxes from: W2 with zstd 1 and shuffle (Atlas's default shuffle).
pub fn w4_source(scale: f64) -> Case {
    w2_cases(scale).into_iter().next().expect("W2 has cases")
}

/// Finds a case of W1 or W2 by id.
pub fn find(id: &str, scale: f64) -> Option<Case> {
    w1_cases(scale).into_iter().chain(w2_cases(scale)).find(|c| c.id == id)
}

/// `full * scale`, rounded down to a multiple of `step` (at least `step`).
fn scaled(full: u64, scale: f64, step: u64) -> u64 {
    let n = (full as f64 * scale) as u64 / step * step;
    n.max(step)
}

/// The W1 array in C order.
pub fn cubic(shape: &[u64]) -> Vec<u16> {
    let (nz, ny, nx) = (shape[0], shape[1], shape[2]);
    let mut out = Vec::with_capacity((nz * ny * nx) as usize);
    for z in 0..nz {
        for y in 0..ny {
            let base = y * y / 32 + z * z * z;
            out.extend((0..nx).map(|x| ((x + base) % 65536) as u16));
        }
    }
    out
}

/// A smooth float32 field, value of element (z, y, x).
pub fn smooth_value(z: u64, y: u64, x: u64) -> f32 {
    ((x as f32) * 0.02).sin() * ((y as f32) * 0.015).cos() * 10.0 + (z as f32) * 0.05
}

/// The W2 array in C order.
pub fn smooth(shape: &[u64]) -> Vec<f32> {
    let (nz, ny, nx) = (shape[0], shape[1], shape[2]);
    let mut out = Vec::with_capacity((nz * ny * nx) as usize);
    for z in 0..nz {
        for y in 0..ny {
            out.extend((0..nx).map(|x| smooth_value(z, y, x)));
        }
    }
    out
}

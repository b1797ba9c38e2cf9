//! The .npy file format (numpy's `numpy.lib.format`, versions 1.0, 2.0 and 3.0): the header
//! is read and written here; the body is streamed by the caller, so `.npy.zst` and
//! `.npy.gz` files are compressed and decompressed on the fly, never copied to a temp file.
//!
//! Supported: little-endian (or byte-order-free) `i1`..`i8`, `u1`..`u8`, `f4`, `f8`, `b1`
//! and `M8[ns]`, in C order (or Fortran order where at most one axis is longer than 1, the
//! same bytes). Other Fortran-order arrays, big-endian data and other dtypes are refused
//! with the reason.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use atlas::DType;

/// `\x93NUMPY`.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The first bytes of a gzip member and of a zstd frame.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// A zstd skippable frame's magic (`pzstd` starts its output with one) but its low nibble.
const ZSTD_SKIPPABLE_MAGIC: [u8; 3] = [0x2a, 0x4d, 0x18];
/// numpy pads the header so the body starts at a multiple of this.
const ALIGN_BYTES: usize = 64;
/// Largest header accepted; numpy's own reader stops at 10 000 bytes by default.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// What the header of a .npy file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The element type.
    pub dtype: DType,
    /// The array's shape (empty for a 0-d array).
    pub shape: Vec<u64>,
}

impl Header {
    /// Bytes of the body: elements times element size.
    pub fn data_bytes(&self) -> Option<u64> {
        self.shape.iter().try_fold(self.dtype.size_bytes() as u64, |acc, &n| acc.checked_mul(n))
    }
}

/// How a .npy file is compressed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// A plain .npy file.
    None,
    /// A zstd stream (`.npy.zst`).
    #[value(alias = "zstd")]
    Zst,
    /// A gzip stream (`.npy.gz`).
    #[value(alias = "gzip")]
    Gz,
}

impl Compression {
    /// The compression a file name implies: `.zst` (or `.zstd`), `.gz`, in any case, else
    /// none.
    pub fn of_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("zst" | "zstd") => Self::Zst,
            Some("gz") => Self::Gz,
            _ => Self::None,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zst => "zst",
            Self::Gz => "gz",
        }
    }
}

/// Opens `path` for reading its decompressed bytes, by its file name's compression; `-` is
/// standard input, whose compression is told by its first bytes (it has no name).
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    if path == Path::new("-") {
        // The first bytes read whole, however a pipe delivers them, then put back in front.
        let mut first = Vec::with_capacity(ZSTD_MAGIC.len());
        io::stdin().take(ZSTD_MAGIC.len() as u64).read_to_end(&mut first).context("cannot read standard input")?;
        let compression = sniff(&first);
        let stdin = BufReader::with_capacity(1 << 20, io::Cursor::new(first).chain(io::stdin()));
        return decompressing(stdin, compression, path);
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let compression = Compression::of_path(path);
    // A plain .npy under a compressed name would fail in the decompressor, which says only
    // that its header is wrong.
    if compression != Compression::None && input.fill_buf().is_ok_and(|first| first.starts_with(MAGIC)) {
        bail!(
            "{}: a plain .npy file, not {}-compressed as its name says: name it .npy",
            path.display(),
            compression.name()
        );
    }
    decompressing(input, compression, path)
}

/// The compression a stream's first bytes show: a gzip or zstd magic number (a zstd frame's
/// or a skippable frame's), else none.
fn sniff(first: &[u8]) -> Compression {
    let zstd_skippable = first.len() >= 4 && first[0] & 0xf0 == 0x50 && first[1..4] == ZSTD_SKIPPABLE_MAGIC;
    if first.starts_with(&GZIP_MAGIC) {
        Compression::Gz
    } else if first.starts_with(&ZSTD_MAGIC) || zstd_skippable {
        Compression::Zst
    } else {
        Compression::None
    }
}

fn decompressing<R: BufRead + 'static>(input: R, compression: Compression, path: &Path) -> Result<Box<dyn Read>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Zst => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .with_context(|| format!("{}: cannot start a zstd decoder", path.display()))?,
        ),
        // Multi-member, as `gzip` writes when files are concatenated.
        Compression::Gz => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
    })
}

/// A .npy file being written, compressed on the fly.
pub enum Sink {
    /// A plain file.
    Plain(BufWriter<File>),
    /// A zstd stream.
    Zst(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    /// A gzip stream.
    Gz(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Sink {
    /// Wraps a new file in the compressor.
    pub fn new(file: File, compression: Compression) -> io::Result<Self> {
        let file = BufWriter::with_capacity(1 << 20, file);
        Ok(match compression {
            Compression::None => Self::Plain(file),
            Compression::Zst => Self::Zst(zstd::stream::write::Encoder::new(file, 3)?),
            Compression::Gz => Self::Gz(flate2::write::GzEncoder::new(file, flate2::Compression::default())),
        })
    }

    /// Ends the compressed stream, flushes, and fsyncs the file if it is a regular one (a
    /// pipe or a device cannot be fsynced).
    pub fn finish(self) -> io::Result<()> {
        let buffered = match self {
            Self::Plain(w) => w,
            Self::Zst(w) => w.finish()?,
            Self::Gz(w) => w.finish()?,
        };
        let file = buffered.into_inner().map_err(io::IntoInnerError::into_error)?;
        if file.metadata()?.is_file() { file.sync_all() } else { Ok(()) }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Zst(w) => w.write(buf),
            Self::Gz(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Zst(w) => w.flush(),
            Self::Gz(w) => w.flush(),
        }
    }
}

/// The .npy `descr` of an Atlas dtype, or `None` for dtypes .npy cannot hold as such.
pub fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::Int8 => "|i1",
        DType::Int16 => "<i2",
        DType::Int32 => "<i4",
        DType::Int64 => "<i8",
        DType::UInt8 => "|u1",
        DType::UInt16 => "<u2",
        DType::UInt32 => "<u4",
        DType::UInt64 => "<u8",
        DType::Float32 => "<f4",
        DType::Float64 => "<f8",
        DType::Bool => "|b1",
        DType::Timestamp => "<M8[ns]",
        _ => return None,
    })
}

/// The Atlas dtype of a .npy `descr`.
fn dtype_of_descr(descr: &str) -> Result<DType, String> {
    const SUPPORTED: &str = "supported: <i1..<i8, <u1..<u8, <f4, <f8, |b1, <M8[ns]";
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let dtype = match code {
        "i1" | "b" => DType::Int8,
        "i2" => DType::Int16,
        "i4" => DType::Int32,
        "i8" => DType::Int64,
        "u1" | "B" => DType::UInt8,
        "u2" => DType::UInt16,
        "u4" => DType::UInt32,
        "u8" => DType::UInt64,
        "f4" => DType::Float32,
        "f8" => DType::Float64,
        "b1" | "?" => DType::Bool,
        "M8[ns]" => DType::Timestamp,
        c if c.starts_with("M8") || c.starts_with("m8") => {
            return Err(format!("dtype {descr:?} is not supported: only datetime64[ns] is ({SUPPORTED})"));
        }
        _ => return Err(format!("dtype {descr:?} is not supported ({SUPPORTED})")),
    };
    // Atlas only runs on little-endian hosts, so native order ('=') is little-endian.
    if order == '>' && dtype.size_bytes() > 1 {
        return Err(format!(
            "big-endian data (dtype {descr:?}) is not supported; convert it first, e.g. with \
             numpy: a.astype(a.dtype.newbyteorder('<'))"
        ));
    }
    Ok(dtype)
}

/// A format import does not read, told by a file's first bytes: its name and what to do.
fn other_format(first: &[u8]) -> Option<&'static str> {
    const FORMATS: [(&[u8], &str); 5] = [
        (b"BZh", "bzip2-compressed, which import does not read: decompress it first (bunzip2)"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz-compressed, which import does not read: decompress it first (unxz)"),
        (&[0x04, 0x22, 0x4d, 0x18], "LZ4-compressed, which import does not read: decompress it first (unlz4)"),
        (b"PK\x03\x04", "a zip archive (numpy.savez makes .npz ones): extract its .npy files first"),
        (b"\x89HDF\r\n\x1a\n", "an HDF5 file: export its datasets to .npy first"),
    ];
    FORMATS.iter().find(|(magic, _)| first.starts_with(magic)).map(|(_, what)| *what)
}

/// Reads the magic, version and header of a .npy stream, leaving `reader` at the body.
/// `path` only names the file in errors; `decompressed` tells whether the stream was
/// decompressed on the way (for the hint on a stream compressed twice).
pub fn read_header(reader: &mut dyn Read, path: &Path, decompressed: bool) -> Result<Header> {
    let name = path.display();
    let mut preamble = [0u8; 8];
    reader.read_exact(&mut preamble).map_err(|e| short_read(&e, path, "the .npy preamble"))?;
    if &preamble[..6] != MAGIC {
        let hint = match sniff(&preamble) {
            Compression::None => other_format(&preamble).map(|what| format!("; it is {what}")).unwrap_or_default(),
            inner if decompressed => {
                format!("; it is {}-compressed again inside: decompress it once first", inner.name())
            }
            Compression::Gz => "; it is gzip-compressed: name it .npy.gz, or give it on standard input as -".into(),
            Compression::Zst => "; it is zstd-compressed: name it .npy.zst, or give it on standard input as -".into(),
        };
        bail!("{name}: not a .npy file (it does not start with \\x93NUMPY){hint}");
    }
    let (major, minor) = (preamble[6], preamble[7]);
    let header_len = match (major, minor) {
        (1, 0) => {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len).map_err(|e| short_read(&e, path, "the header length"))?;
            usize::from(u16::from_le_bytes(len))
        }
        (2 | 3, 0) => {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).map_err(|e| short_read(&e, path, "the header length"))?;
            usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX)
        }
        _ => bail!("{name}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"),
    };
    if header_len > MAX_HEADER_BYTES {
        bail!("{name}: the .npy header claims {header_len} bytes, over the limit of {MAX_HEADER_BYTES}");
    }
    let mut text = vec![0u8; header_len];
    reader.read_exact(&mut text).map_err(|e| short_read(&e, path, "the .npy header"))?;
    // Versions 1 and 2 are latin-1, 3 is UTF-8; every header numpy writes is ASCII.
    let text = String::from_utf8(text).map_err(|_| anyhow!("{name}: the .npy header is not ASCII/UTF-8 text"))?;
    parse_header(&text).map_err(|detail| anyhow!("{name}: {detail}"))
}

fn short_read(e: &io::Error, path: &Path, what: &str) -> anyhow::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        anyhow!("{}: the data ends inside {what} (truncated, or not a .npy file)", path.display())
    } else {
        anyhow!("{}: cannot read {what}: {e}", path.display())
    }
}

/// The start of a header's text for an error message: a hostile one may be 4 GiB long.
fn excerpt(text: &str) -> String {
    const SHOWN_CHARS: usize = 200;
    let text = text.trim_end();
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Parses the header dictionary, e.g. `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
/// Like numpy, it takes exactly these three keys; unlike numpy, which keeps the last of
/// a repeated key, it refuses one (a file another reader may read differently).
fn parse_header(text: &str) -> Result<Header, String> {
    let invalid = |detail: &str| format!("invalid .npy header {:?}: {detail}", excerpt(text));
    let mut parser = Literal { text: text.as_bytes(), at: 0, depth: 0 };
    let value = parser.value().map_err(|e| invalid(&e))?;
    if parser.peek().is_some() {
        return Err(invalid(&format!("text after the dictionary at byte {}", parser.at)));
    }
    let Lit::Dict(entries) = value else {
        return Err(invalid("not a dictionary"));
    };
    for (i, (key, _)) in entries.iter().enumerate() {
        if !HEADER_KEYS.contains(&key.as_str()) {
            return Err(invalid(&format!("unknown key {key:?} (a .npy header has {HEADER_KEYS:?})")));
        }
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(invalid(&format!("key {key:?} given twice")));
        }
    }
    let field = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!(".npy header has no {key:?} field"))
    };
    let dtype = match field("descr")? {
        Lit::Str(descr) => dtype_of_descr(descr)?,
        Lit::List(_) => return Err("structured (record) dtypes are not supported".to_string()),
        _ => return Err("'descr' is not a dtype string".to_string()),
    };
    let fortran_order = match field("fortran_order")? {
        Lit::Bool(fortran_order) => *fortran_order,
        _ => return Err("'fortran_order' is not True or False".to_string()),
    };
    let shape = match field("shape")? {
        Lit::Tuple(items) => items
            .iter()
            .map(|item| match item {
                Lit::Int(n) => Ok(*n),
                _ => Err("'shape' holds something other than non-negative integers".to_string()),
            })
            .collect::<Result<Vec<u64>, String>>()?,
        _ => return Err("'shape' is not a tuple".to_string()),
    };
    // Refused before anything works per dimension (the default chunk shape takes time
    // per dimension squared).
    if shape.len() > atlas::MAX_NDIM {
        return Err(format!("{} dimensions is over Atlas's limit of {}", shape.len(), atlas::MAX_NDIM));
    }
    // Column-major bytes are the row-major ones when at most one axis is longer than 1, or
    // when there are none.
    if fortran_order && !shape.contains(&0) && shape.iter().filter(|&&n| n > 1).count() > 1 {
        return Err("Fortran-order arrays are not supported; save a C-order copy, e.g. with \
                    numpy: np.save(path, np.ascontiguousarray(a))"
            .to_string());
    }
    let header = Header { dtype, shape };
    if header.data_bytes().is_none() {
        return Err(format!("shape {:?} overflows a 64-bit byte count", header.shape));
    }
    Ok(header)
}

/// The keys of a .npy header dictionary, all required.
const HEADER_KEYS: [&str; 3] = ["descr", "fortran_order", "shape"];

/// The Python literals a .npy header uses.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(String, Lit)>),
}

/// A recursive-descent reader of those literals.
struct Literal<'a> {
    text: &'a [u8],
    at: usize,
    /// Containers open around the current position.
    depth: usize,
}

/// Containers a header may nest, at most (numpy writes two: a dict holding a tuple); a
/// deeper header is refused before its recursion could exhaust the stack.
const MAX_DEPTH: usize = 16;

impl Literal<'_> {
    fn skip_space(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        match self.peek() {
            Some(b) if b == byte => {
                self.at += 1;
                Ok(())
            }
            Some(b) => Err(format!("expected {:?} at byte {}, found {:?}", byte as char, self.at, b as char)),
            None => Err(format!("expected {:?}, found the end", byte as char)),
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        if matches!(self.peek(), Some(b'{' | b'(' | b'[')) && self.depth == MAX_DEPTH {
            return Err(format!("values nested over {MAX_DEPTH} deep at byte {}", self.at));
        }
        self.depth += 1;
        let value = self.nested_value();
        self.depth -= 1;
        value
    }

    fn nested_value(&mut self) -> Result<Lit, String> {
        match self.peek() {
            Some(b'{') => self.dict(),
            Some(b'(') => self.parenthesized(),
            Some(b'[') => self.sequence(b'[', b']').map(Lit::List),
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'0'..=b'9') => self.int(),
            Some(b'T' | b'F') => self.boolean(),
            Some(b) => Err(format!("unexpected {:?} at byte {}", b as char, self.at)),
            None => Err("unexpected end".to_string()),
        }
    }

    fn dict(&mut self) -> Result<Lit, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(Lit::Dict(entries));
            }
            let key = self.string()?;
            self.expect(b':')?;
            entries.push((key, self.value()?));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.at)),
            }
        }
    }

    /// A tuple, or as in Python one value in parentheses: `(3)` is 3, `(3,)` a tuple.
    fn parenthesized(&mut self) -> Result<Lit, String> {
        let (mut items, last_comma) = self.sequence_items(b'(', b')')?;
        if items.len() == 1 && !last_comma {
            return Ok(items.pop().expect("one item"));
        }
        Ok(Lit::Tuple(items))
    }

    fn sequence(&mut self, open: u8, close: u8) -> Result<Vec<Lit>, String> {
        self.sequence_items(open, close).map(|(items, _)| items)
    }

    /// The items between `open` and `close`, and whether a comma followed the last one.
    fn sequence_items(&mut self, open: u8, close: u8) -> Result<(Vec<Lit>, bool), String> {
        self.expect(open)?;
        let mut items = Vec::new();
        let mut last_comma = false;
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok((items, last_comma));
            }
            items.push(self.value()?);
            last_comma = self.peek() == Some(b',');
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {}
                _ => return Err(format!("expected ',' or {:?} at byte {}", close as char, self.at)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let Some(quote @ (b'\'' | b'"')) = self.peek() else {
            return Err(format!("expected a string at byte {}", self.at));
        };
        let start = self.at + 1;
        // Header strings (dtype codes, field names) never hold escapes.
        let len = self.text[start..].iter().position(|&b| b == quote).ok_or("unterminated string")?;
        self.at = start + len + 1;
        String::from_utf8(self.text[start..start + len].to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }

    fn int(&mut self) -> Result<Lit, String> {
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).expect("ASCII digits");
        // Python 2 wrote long integers with an `L` suffix.
        if self.text.get(self.at) == Some(&b'L') {
            self.at += 1;
        }
        digits.parse().map(Lit::Int).map_err(|_| format!("integer {digits} does not fit 64 bits"))
    }

    fn boolean(&mut self) -> Result<Lit, String> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(Lit::Bool(value));
            }
        }
        Err(format!("unexpected word at byte {}", self.at))
    }
}

/// Writes the preamble and header numpy would write for an array of `dtype` and `shape`:
/// version 1.0 when the header fits in 65535 bytes (any shape of up to 32 dimensions
/// does), else 2.0; padded with spaces and a newline so the body starts at a multiple of
/// 64 bytes.
pub fn write_header(out: &mut dyn Write, dtype: DType, shape: &[u64]) -> Result<()> {
    let descr = descr(dtype).ok_or_else(|| anyhow!("{dtype} arrays cannot be written as .npy"))?;
    let shape_text = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    for (version, len_bytes) in [(1u8, 2usize), (2, 4)] {
        let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1;
        let header_len = dict.len() + 1 + (ALIGN_BYTES - unpadded % ALIGN_BYTES) % ALIGN_BYTES;
        if version == 1 && header_len > usize::from(u16::MAX) {
            continue;
        }
        let mut bytes = Vec::with_capacity(unpadded + ALIGN_BYTES);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[version, 0]);
        if version == 1 {
            bytes.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        bytes.extend_from_slice(dict.as_bytes());
        bytes.resize(bytes.len() + header_len - dict.len() - 1, b' ');
        bytes.push(b'\n');
        out.write_all(&bytes)?;
        return Ok(());
    }
    unreachable!("a version 2.0 header holds any dictionary below 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(bytes: &[u8]) -> Result<Header> {
        read_header(&mut &bytes[..], Path::new("x.npy"), false)
    }

    #[test]
    fn writes_the_header_numpy_writes() {
        let mut out = Vec::new();
        write_header(&mut out, DType::Float64, &[3, 4]).unwrap();
        // np.save of np.zeros((3, 4)): 128 bytes of preamble and header.
        let dict = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
        assert_eq!(out.len(), 128);
        assert_eq!(&out[..10], b"\x93NUMPY\x01\x00\x76\x00");
        assert_eq!(&out[10..10 + dict.len()], dict);
        assert!(out[10 + dict.len()..127].iter().all(|&b| b == b' '));
        assert_eq!(out[127], b'\n');
        for (dtype, shape) in [(DType::Bool, vec![]), (DType::Timestamp, vec![7]), (DType::UInt8, vec![0, 2, 3])] {
            let mut out = Vec::new();
            write_header(&mut out, dtype, &shape).unwrap();
            assert_eq!(out.len() % 64, 0);
            assert_eq!(header_of(&out).unwrap(), Header { dtype, shape });
        }
    }

    #[test]
    fn reads_versions_two_and_three_and_old_spellings() {
        let dict = b"{\"descr\":\"<i2\",\"fortran_order\":False,\"shape\":(2L,3L)}\n";
        for version in [2u8, 3] {
            let mut bytes = b"\x93NUMPY".to_vec();
            bytes.extend_from_slice(&[version, 0]);
            bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
            bytes.extend_from_slice(dict);
            assert_eq!(header_of(&bytes).unwrap(), Header { dtype: DType::Int16, shape: vec![2, 3] });
        }
    }

    fn v1(dict: &str) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_why() {
        let err = |dict: &str| format!("{:#}", header_of(&v1(dict)).unwrap_err());
        assert!(err("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }").contains("big-endian"));
        assert!(err("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }").contains("Fortran-order"));
        // With at most one axis longer than 1 (or no elements), column-major bytes are the
        // row-major ones.
        for shape in ["(3,)", "(1, 3, 1)", "()", "(0, 3, 4)"] {
            let dict = format!("{{'descr': '<f8', 'fortran_order': True, 'shape': {shape}, }}");
            assert!(header_of(&v1(&dict)).is_ok(), "{shape}");
        }
        assert!(err("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }").contains("not supported"));
        assert!(err("{'descr': '<M8[us]', 'fortran_order': False, 'shape': (3,), }").contains("datetime64[ns]"));
        assert!(err("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (3,), }").contains("structured"));
        assert!(err("{'descr': '<f8', 'shape': (3,), }").contains("fortran_order"));
        assert!(err("{'descr': 5, 'fortran_order': False, 'shape': (3,), }").contains("not a dtype string"));
        // A repeated key (numpy keeps the last: Fortran order here), an extra key, text
        // after the dictionary, and `(3)`, which is 3 and not a tuple, as numpy reads them.
        let twice = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'fortran_order': True}";
        assert!(err(twice).contains("key \"fortran_order\" given twice"));
        assert!(err("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': 1}").contains("unknown key \"x\""));
        assert!(err("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)} (4,)").contains("text after"));
        assert!(err("{'descr': '<f8', 'fortran_order': False, 'shape': (3)}").contains("not a tuple"));
        // Dimensions past the limit are refused before anything works per dimension.
        let many = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': (0,{}), }}", " 9,".repeat(20_000));
        assert!(err(&many).contains("20001 dimensions is over Atlas's limit of 32"));
        assert!(err("{'descr': '<f8', 'fortran_order': False, 'shape': (3,").contains("invalid .npy header"));
        // Nesting deep enough to overflow the stack of a recursive parser, within the 64 KiB
        // a version 1 header can hold.
        let deep = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': {}3{}, }}",
            "(".repeat(30_000),
            ",)".repeat(30_000)
        );
        assert!(err(&deep[..deep.len().min(65_000)]).contains("nested over 16 deep"));
        let just_deep_enough =
            format!("{{'descr': {}{}, 'fortran_order': False, 'shape': (3,), }}", "[".repeat(15), "]".repeat(15));
        assert!(err(&just_deep_enough).contains("structured"));
        assert!(format!("{:#}", header_of(b"PK\x03\x04garbage").unwrap_err()).contains("not a .npy file"));
        assert!(format!("{:#}", header_of(b"\x1f\x8b\x08\x00garbage").unwrap_err()).contains("name it .npy.gz"));
        assert!(format!("{:#}", header_of(b"\x28\xb5\x2f\xfdgarbage").unwrap_err()).contains("name it .npy.zst"));
        // A hostile header's text is cut short in the message.
        let long = format!("{{'descr': '{}'}}", "x".repeat(100_000));
        let err = format!("{:#}", header_of(&v1(&long)).unwrap_err());
        assert!(err.len() < 1000, "{} bytes of error", err.len());
        assert!(format!("{:#}", header_of(b"\x93NUMPY\x01\x00\x40").unwrap_err()).contains("truncated"));
        assert!(format!("{:#}", header_of(b"\x93NUMPY\x04\x00\x00\x00").unwrap_err()).contains("version 4.0"));
        // One-byte types need no byte order, whatever the file says.
        let header = header_of(&v1("{'descr': '>u1', 'fortran_order': False, 'shape': (), }")).unwrap();
        assert_eq!(header, Header { dtype: DType::UInt8, shape: vec![] });
    }
}

//! `atlas`: look inside an Atlas store, check it, change how it is encoded, delete from it,
//! and move arrays in and out as .npy files, without writing code.
//!
//! This crate parses arguments, calls the public `atlas` API, prints and picks the exit
//! code; it holds no store logic of its own. Block-level facts (codec mix, sizes, verify)
//! come through `inspect.rs` only; `PROPOSED_LIB_API.md` lists what the library could add
//! for the tool.

mod coords;
mod inspect;
mod maintain;
mod npy;
mod progress;
mod remove;
mod rename;
mod report;
mod slabs;
mod slice;
mod transfer;
mod values;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow};
use atlas::{ArrayHandle, Atlas, Codec, Dataset, EntityKind, Error, Scalar, Shuffle, StoreConfig};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::npy::Compression;
use crate::slice::{Selection, SliceSpec};
use crate::transfer::{DEFAULT_SLAB_BYTES, ImportOptions};
use crate::values::FillArg;

/// Exit status of a verify that found bad blocks.
const EXIT_CORRUPT: u8 = 3;
/// Exit status of an error.
const EXIT_ERROR: u8 = 1;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  error: the message names the store, array or file and what is wrong
  2  usage error: unknown command or option, or a malformed value (e.g. --slice 1:x)
  3  `atlas verify` found bad blocks (each one is listed)

Progress bars (verify, recompress, import, export; a spinner for compact and convert-meta)
are drawn on stderr only when it is a terminal; --quiet turns them off. Arrays are named DATASET/ARRAY
(a leading / is taken, as in h5py: /DATASET/ARRAY).";

/// Inspect, verify, convert and recompress Atlas stores; delete from them; import and export
/// arrays as .npy.
#[derive(Debug, Parser)]
#[command(name = "atlas", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    /// Never draw progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Datasets and arrays (dtype, shape, chunks, dims), codec mix, bytes raw and on disk,
    /// metadata file and format.
    Info {
        /// The store directory.
        store: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List the datasets, or the arrays of one dataset.
    Ls {
        /// The store directory.
        store: PathBuf,
        /// List this dataset's arrays.
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        dataset: Option<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Statistics of an array: count, nulls, min, max, sum, mean (read from the block
    /// index, no data is decoded). Nulls are the values equal bit for bit to the array's
    /// fill value (0, or not-a-time for timestamps, unless it was given one: under fill 0,
    /// -0.0 is a value), NaN and missing timestamps; the other statistics leave them out.
    Stats {
        /// The store directory.
        store: PathBuf,
        /// The array, as DATASET/ARRAY.
        array: ArrayPath,
        /// Also list each block's statistics.
        #[arg(long)]
        blocks: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Attributes of the store, a dataset (DATASET) or an array (DATASET/ARRAY).
    Attrs {
        /// The store directory.
        store: PathBuf,
        /// DATASET or DATASET/ARRAY; the store's own attributes if left out (or `/`).
        target: Option<AttrsTarget>,
        /// Print one JSON object; each value keeps its type tag.
        #[arg(long)]
        json: bool,
    },
    /// Print an array's values: one row of the last axis per line (one value per line for 1-d;
    /// timestamps as ISO 8601), each plane of a 3-d or larger selection under its index in the
    /// array (`[2, :, :]`).
    Cat {
        /// The store directory.
        store: PathBuf,
        /// The array, as DATASET/ARRAY.
        array: ArrayPath,
        /// numpy-style selection, one item per axis: `0:10,5,:`, `-3:`, `::2`, `...,0`.
        #[arg(long, allow_hyphen_values = true)]
        slice: Option<SliceSpec>,
        /// Print nested JSON arrays (timestamps as nanoseconds).
        #[arg(long)]
        json: bool,
        #[arg(long, hide = true, default_value_t = DEFAULT_SLAB_BYTES)]
        slab_bytes: u64,
    },
    /// Decode every block and check its checksum and statistics; list each bad block and exit
    /// 3 if any.
    Verify {
        /// The store directory.
        store: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the metadata file in another encoding (crash-safe).
    #[command(group(clap::ArgGroup::new("encoding").args(["format", "compression"]).required(true).multiple(true)))]
    ConvertMeta {
        /// The store directory.
        store: PathBuf,
        /// Serialisation (default: the one the store has).
        #[arg(long)]
        format: Option<MetaFormatArg>,
        /// Compression of the metadata file (default: the one the store has).
        #[arg(long)]
        compression: Option<MetaCompressionArg>,
    },
    /// Re-encode the blocks of the store, or of one array, with another codec. Values and
    /// checksums do not change; the codec becomes the default for new blocks.
    Recompress {
        /// The store directory.
        store: PathBuf,
        /// Only this array (DATASET/ARRAY); it keeps the codec as its own setting.
        #[arg(long, value_name = "DATASET/ARRAY")]
        array: Option<ArrayPath>,
        /// The codec.
        #[arg(long)]
        codec: CodecArg,
        /// zstd level (default 3; up to 22, negative for fast modes, 0 for zstd's default).
        #[arg(long, allow_hyphen_values = true)]
        level: Option<i32>,
        /// Byte shuffle before the codec (auto: on for dtypes wider than one byte, unless the codec is none;
        /// bytedelta: shuffle, then each byte plane stored as differences, for smooth data; delta: each
        /// element stored as its difference from the one before, then shuffle, for steady series such as
        /// timestamps). Without it each array keeps the shuffle it has.
        #[arg(long)]
        shuffle: Option<ShuffleArg>,
    },
    /// Copy the live blocks into one fragment file and remove the old ones, reclaiming
    /// superseded blocks and those of deleted arrays. Blocks are copied as they are, not
    /// decoded (their index entries are checked): run `atlas verify` first on a store that
    /// may be damaged, as the old files go.
    Compact {
        /// The store directory.
        store: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Delete datasets and arrays, all in one commit (or none, if one is missing). Their
    /// blocks stay in the fragment files until `atlas compact` reclaims them.
    Rm {
        /// Skip names that do not exist, as `rm -f` does (the others are still deleted in one
        /// commit); with none left, change nothing and exit 0.
        #[arg(short, long)]
        force: bool,
        /// The store directory.
        store: PathBuf,
        /// Each DATASET (or DATASET/; with its arrays and attributes) or DATASET/ARRAY to
        /// delete.
        #[arg(required = true)]
        names: Vec<DatasetOrArray>,
    },
    /// Rename a dataset (`mv STORE run1 run2`) or move an array, within its dataset or to
    /// another (`mv STORE run1/temp run2/t`). Only the metadata changes: no block is copied.
    Mv {
        /// The store directory.
        store: PathBuf,
        /// The DATASET or DATASET/ARRAY to move.
        source: DatasetOrArray,
        /// Its new name: a DATASET for a dataset, a DATASET/ARRAY for an array (the dataset
        /// must exist).
        dest: DatasetOrArray,
    },
    /// Copy an array to a new one (in its dataset or another), with its schema and
    /// attributes; blocks are copied as stored, not decoded.
    Cp {
        /// The store directory.
        store: PathBuf,
        /// The DATASET/ARRAY to copy.
        source: ArrayPath,
        /// The new DATASET/ARRAY (the dataset must exist).
        dest: ArrayPath,
    },
    /// Import a .npy file (or .npy.zst, .npy.gz, decompressed on the fly) as an array,
    /// creating the dataset and array as needed.
    Import {
        /// The store directory.
        store: PathBuf,
        /// The array to create, as DATASET/ARRAY.
        array: ArrayPath,
        /// The .npy, .npy.zst or .npy.gz file; `-` reads standard input (its compression told
        /// by its first bytes).
        file: PathBuf,
        /// Chunk shape of the new array, e.g. `100,512` (default: about 1 MiB per chunk).
        #[arg(long, value_delimiter = ',', value_parser = parse_chunk_extent)]
        chunks: Option<Vec<u64>>,
        /// Dimension names of the new array, e.g. `time,depth`.
        #[arg(long, value_delimiter = ',', value_parser = parse_dim_name)]
        dims: Option<Vec<String>>,
        /// Fill value of the new array, e.g. `nan` or `-999` (`true`, `false`, 1 or 0 for bool
        /// arrays; an ISO 8601 instant such as `2020-01-01T00:00` or `NaT` for timestamps;
        /// default 0, for timestamps not-a-time): what unwritten elements read as, and the
        /// value statistics count as null.
        #[arg(long, value_parser = parse_fill_value, allow_hyphen_values = true)]
        fill_value: Option<FillArg>,
        /// The array's own codec (default: the store's); with --overwrite it becomes the
        /// existing array's codec for the blocks written from then on.
        #[arg(long)]
        codec: Option<CodecArg>,
        /// zstd level (default 3; up to 22, negative for fast modes, 0 for zstd's default).
        #[arg(long, allow_hyphen_values = true)]
        level: Option<i32>,
        /// The array's own byte shuffle (default: the store's; values as for recompress).
        #[arg(long)]
        shuffle: Option<ShuffleArg>,
        /// Write into an existing array of the same dtype and shape.
        #[arg(long)]
        overwrite: bool,
        /// Create the store (with default settings) if the path holds none.
        #[arg(long)]
        create: bool,
        #[arg(long, hide = true, default_value_t = DEFAULT_SLAB_BYTES)]
        slab_bytes: u64,
    },
    /// Export an array to a .npy file, compressed if the name ends in .zst or .gz.
    Export {
        /// The store directory.
        store: PathBuf,
        /// The array, as DATASET/ARRAY.
        array: ArrayPath,
        /// The file to write; `-` writes standard output.
        file: PathBuf,
        /// Compression (default: from the file name).
        #[arg(long)]
        compression: Option<Compression>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
        #[arg(long, hide = true, default_value_t = DEFAULT_SLAB_BYTES)]
        slab_bytes: u64,
    },
}

/// An array named `DATASET/ARRAY`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ArrayPath {
    dataset: String,
    array: String,
}

impl FromStr for ArrayPath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match from_root(text).split_once('/') {
            Some((dataset, array)) if !dataset.is_empty() && !array.is_empty() && !array.contains('/') => {
                Ok(Self { dataset: dataset.to_string(), array: array.to_string() })
            }
            _ => Err(format!("{text:?} is not of the form DATASET/ARRAY")),
        }
    }
}

/// A dataset or array path without its leading `/`, the store's root, as h5py and Atlas's
/// Python module write one (`/run42/temp`).
fn from_root(text: &str) -> &str {
    text.strip_prefix('/').unwrap_or(text)
}

/// What `atlas attrs` lists the attributes of, `atlas rm` deletes or `atlas mv` moves.
#[derive(Debug, Clone)]
enum DatasetOrArray {
    Dataset(String),
    Array(ArrayPath),
}

impl FromStr for DatasetOrArray {
    type Err = String;

    fn from_str(given: &str) -> Result<Self, String> {
        let text = from_root(given);
        match text {
            "" => Err("the target is empty: give DATASET or DATASET/ARRAY".into()),
            // `run42/`, as `atlas info` heads a dataset, is that dataset.
            _ if text.ends_with('/') && text.matches('/').count() == 1 && text.len() > 1 => {
                Ok(Self::Dataset(text[..text.len() - 1].to_string()))
            }
            // Parsed from what was given, so that its root `/` is dropped once.
            _ if text.contains('/') => given.parse().map(Self::Array),
            _ => Ok(Self::Dataset(text.to_string())),
        }
    }
}

/// What `atlas attrs` lists the attributes of: the store (`/`, the root, as `ls` takes it),
/// a dataset or an array.
#[derive(Debug, Clone)]
enum AttrsTarget {
    Root,
    Named(DatasetOrArray),
}

impl FromStr for AttrsTarget {
    type Err = String;

    fn from_str(given: &str) -> Result<Self, String> {
        if given == "/" { Ok(Self::Root) } else { given.parse().map(Self::Named) }
    }
}

impl fmt::Display for ArrayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dataset, self.array)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetaFormatArg {
    Json,
    Msgpack,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetaCompressionArg {
    None,
    // `zst` as `export --compression` spells it.
    #[value(alias = "zst")]
    Zstd,
    Lz4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodecArg {
    Zstd,
    Lz4,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShuffleArg {
    Auto,
    On,
    Off,
    Bytedelta,
    Delta,
}

impl From<ShuffleArg> for Shuffle {
    fn from(shuffle: ShuffleArg) -> Self {
        match shuffle {
            ShuffleArg::Auto => Self::Auto,
            ShuffleArg::On => Self::On,
            ShuffleArg::Off => Self::Off,
            ShuffleArg::Bytedelta => Self::ByteDelta,
            ShuffleArg::Delta => Self::Delta,
        }
    }
}

/// The codec `--codec` and `--level` of `subcommand` ask for; exits with a usage error for
/// a level zstd does not have, or a level given to another codec.
fn codec_of(subcommand: &str, codec: CodecArg, level: Option<i32>) -> Codec {
    match (codec, level) {
        (CodecArg::Zstd, Some(level)) if !Codec::zstd_levels().contains(&level) => usage_error(
            subcommand,
            ErrorKind::ValueValidation,
            format!(
                "--level {level} is outside zstd's levels, {} to {}",
                Codec::zstd_levels().start(),
                Codec::zstd_levels().end()
            ),
        ),
        (CodecArg::Zstd, level) => Codec::Zstd { level: level.unwrap_or(Codec::DEFAULT_ZSTD_LEVEL) },
        (_, Some(_)) => usage_error(subcommand, ErrorKind::ArgumentConflict, "--level applies to --codec zstd only"),
        (CodecArg::Lz4, None) => Codec::Lz4,
        (CodecArg::None, None) => Codec::None,
    }
}

impl Command {
    /// Whether the command's work is done once it returns (a change committed, a file
    /// exported), its summary left to print: failing to print it must not fail the command.
    fn done_before_summary(&self) -> bool {
        matches!(
            self,
            Self::ConvertMeta { .. }
                | Self::Recompress { .. }
                | Self::Compact { .. }
                | Self::Rm { .. }
                | Self::Mv { .. }
                | Self::Cp { .. }
                | Self::Import { .. }
                | Self::Export { .. }
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done_before_summary = cli.command.done_before_summary();
    let stdout = io::stdout();
    let mut out = BufWriter::new(NamedStdout(stdout.lock()));
    let result = run(cli, &mut out).and_then(|code| match out.flush() {
        // The reader left before the last lines: the command still ended as it decided
        // (`atlas verify ... | true` still reports bad blocks by its status).
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(code),
        // A change that succeeded is committed (an export written): failing now would have a
        // script redo it.
        Err(e) if done_before_summary => {
            eprintln!("atlas: warning: the command's work is done, but its summary could not be written: {e}");
            Ok(code)
        }
        flushed => flushed.map(|()| code).map_err(Into::into),
    });
    match result {
        Ok(code) => code,
        // `atlas cat ... | head`: the reader left, which is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            drop(out);
            eprintln!("atlas: error: {}", error_message(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `e` and its causes, joined by ": ", each cause once: Atlas's I/O errors already end
/// with the OS error they carry as their source. Printable (see [`printable`]).
fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message != text && !message.ends_with(&format!(": {text}")) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    printable(&message).into_owned()
}

/// `text` with its control characters escaped (`\0`, `\u{1b}`): a message may quote bytes
/// of a damaged file, and a path any name, which must not reach a terminal as control codes.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect(),
    )
}

/// `word` as it would be typed into a POSIX shell in a suggested command: as it is when it
/// holds only characters no shell treats specially, else in single quotes, or as `$'...'`
/// with escapes where it holds control characters (a newline in single quotes would not
/// paste back as one).
pub(crate) fn shell_word(word: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return Cow::Borrowed(word);
    }
    if !word.chars().any(char::is_control) {
        return Cow::Owned(format!("'{}'", word.replace('\'', "'\\''")));
    }
    let escaped: String = word
        .chars()
        .map(|c| match c {
            '\'' | '\\' => format!("\\{c}"),
            c if c.is_control() => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect();
    Cow::Owned(format!("$'{escaped}'"))
}

/// A command to suggest in a message, `atlas SUBCOMMAND ARGS...`, each argument quoted for
/// a shell, with `--` before them where one starts with `-` (it would read as an option).
pub(crate) fn suggested(subcommand: &str, args: &[&str]) -> String {
    let dashes = if args.iter().any(|arg| arg.starts_with('-')) { " --" } else { "" };
    let args: Vec<Cow<'_, str>> = args.iter().map(|arg| shell_word(arg)).collect();
    format!("`atlas {subcommand}{dashes} {}`", args.join(" "))
}

/// Standard output whose write errors name it (`standard output: No space left on
/// device`), as every message names its file; the error's kind is kept, so a broken pipe
/// is still told apart.
struct NamedStdout<W>(W);

impl<W: Write> Write for NamedStdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(|e| io::Error::new(e.kind(), format!("standard output: {e}")))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(|e| io::Error::new(e.kind(), format!("standard output: {e}")))
    }
}

/// Whether `e` comes from writing to a pipe whose reader left.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Exits with a usage error (status 2) under `subcommand`'s usage line, as clap does for
/// its own.
fn usage_error(subcommand: &str, kind: ErrorKind, msg: impl fmt::Display) -> ! {
    let mut cli = Cli::command();
    cli.build(); // gives subcommands their full name (`atlas recompress`) for the usage line
    let command = cli.find_subcommand_mut(subcommand).expect("a subcommand of the CLI");
    command.error(kind, msg).exit()
}

fn open_store(path: &Path) -> Result<Atlas> {
    Atlas::open(path).map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: Error) -> anyhow::Error {
    match e {
        Error::NotFound { kind: EntityKind::Store, .. } if !path.exists() => {
            anyhow!("{}: no such store (the path does not exist)", path.display())
        }
        Error::NotFound { kind: EntityKind::Store, .. } if !path.is_dir() => {
            anyhow!("{}: not an Atlas store (a store is a directory)", path.display())
        }
        Error::NotFound { kind: EntityKind::Store, .. } => {
            anyhow!("{}: not an Atlas store (no atlas.json or other metadata file in it)", path.display())
        }
        other => anyhow::Error::new(other).context(format!("cannot open store {}", path.display())),
    }
}

/// Opens a dataset; a missing one is named with its store and the command that lists them.
fn open_dataset(store: &Atlas, name: &str) -> Result<Dataset> {
    store.open_dataset(name).map_err(|e| match e {
        Error::NotFound { kind: EntityKind::Dataset, .. } => {
            let path = store.path().display().to_string();
            anyhow!("{e} in store {path}; {} lists its datasets", suggested("ls", &[&path]))
        }
        other => other.into(),
    })
}

/// One name of `--dims`: not empty (a stray comma, most likely; the library's unnamed axis
/// is left to programs that mean it).
fn parse_dim_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("a dimension name is empty (a stray comma?)".into());
    }
    Ok(text.to_string())
}

/// One extent of `--chunks`: a whole number from 1 to `u64::MAX` (told here, in the flag's
/// terms; clap's message names the value).
fn parse_chunk_extent(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("a chunk extent is at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("a chunk extent is at most {}", u64::MAX))
        }
        Err(_) => Err("a chunk extent is a whole number of at least 1".into()),
    }
}

/// A `--fill-value`: `true` or `false` (for bool arrays), an ISO 8601 instant or `NaT` (for
/// timestamps; see [`values::parse_iso8601`]), else a number: a whole number written
/// without an exponent (`-999`, `123.0`) as the integer it is (signed, or unsigned past
/// i64), else a float (`1e5`, `0.5`, `nan`, `inf` and `-inf`). Whether it fits the array's
/// dtype is the schema's check. Refused where the value would not be the number written,
/// so that an array does not get another one: a whole number past 64-bit integers, past
/// float64's range (`1e400`), a fraction that rounds to a whole number
/// (`9007199254740992.5`) or to zero (`1e-400`).
fn parse_fill_value(text: &str) -> Result<FillArg, String> {
    let text = text.trim();
    match text {
        "true" => return Ok(FillArg::Bool(true)),
        "false" => return Ok(FillArg::Bool(false)),
        _ => {}
    }
    if let Some(ns) = values::parse_iso8601(text) {
        return Ok(FillArg::Instant(ns));
    }
    // Four digits and a dash, or a colon: a date meant, not a number.
    let bytes = text.as_bytes();
    if bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' || text.contains(':') {
        return Err(format!(
            "{text:?} is no ISO 8601 instant that exists within int64 nanoseconds (1677-09-21 to 2262-04-11)"
        ));
    }
    parse_fill_number(text).map(FillArg::Number)
}

/// A `--fill-value` given as a number ([`parse_fill_value`]).
fn parse_fill_number(text: &str) -> Result<Scalar, String> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let is_whole = digits(whole.trim_start_matches(['+', '-'])) && !whole.trim_start_matches(['+', '-']).is_empty();
    // A whole number, but -0.0 (and -0.), which stays a float: its bits are not 0's.
    if is_whole && fraction.bytes().all(|b| b == b'0') && !(text.starts_with('-') && text.contains('.')) {
        let integer = whole.parse().map(Scalar::Int).or_else(|_| whole.parse().map(Scalar::UInt));
        return integer.map_err(|_| format!("{text} is past 64-bit integers (write a float as 1e20)"));
    }
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    let spelled_infinite = text.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf");
    if v.is_infinite() && !spelled_infinite {
        return Err(format!("{text} is past float64's range"));
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    if v == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(format!("{text} is below float64's range (it reads as 0)"));
    }
    if digits(fraction) && fraction.bytes().any(|b| b != b'0') && v.fract() == 0.0 {
        return Err(format!("{text} is not exact as a float (it reads as {v:?})"));
    }
    Ok(Scalar::Float(v))
}

/// `atlas ls`: the store's datasets, or the arrays of `dataset`.
fn ls(path: &Path, dataset: Option<&str>, json: bool, out: &mut dyn Write) -> Result<()> {
    let store = open_store(path)?;
    // `/`, the root as h5py names it, is the store: its datasets are listed.
    let dataset = dataset.filter(|&name| name != "/");
    // `run42/`, as `atlas info` heads a dataset, is that dataset.
    let dataset = dataset.map(|name| from_root(name).strip_suffix('/').unwrap_or(from_root(name)));
    if let Some((name, (dataset, array))) = dataset.and_then(|name| Some((name, name.split_once('/')?)))
        && !dataset.is_empty()
        && !array.is_empty()
    {
        // No dataset name holds a `/`: this names an array.
        let path = path.display().to_string();
        return Err(anyhow!(
            "{name} names an array; {} lists its dataset's arrays",
            suggested("ls", &[&path, dataset])
        ));
    }
    let dataset = dataset.map(|name| open_dataset(&store, name)).transpose()?;
    report::ls(&store, dataset.as_ref(), json, out)
}

/// Opens an array; a missing one is named as [`open_dataset`] does.
fn open_array(store: &Atlas, path: &ArrayPath) -> Result<ArrayHandle> {
    open_dataset(store, &path.dataset)?.array(&path.array).map_err(|e| match e {
        Error::NotFound { .. } => {
            let store = store.path().display().to_string();
            anyhow!("{e} in store {store}; {} lists its arrays", suggested("ls", &[&store, &path.dataset]))
        }
        other => other.into(),
    })
}

/// Drops a write command's uncommitted changes when the command ends, so that one failing
/// midway (an import cut short by a truncated file) commits nothing: Atlas would otherwise
/// flush them when the store's last handle is dropped. A command that succeeded has
/// flushed, and then there is nothing to drop.
struct DiscardUncommitted<'a>(&'a Atlas);

impl Drop for DiscardUncommitted<'_> {
    fn drop(&mut self) {
        self.0.discard();
    }
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Info { store, json } => report::info(&open_store(&store)?, json, out)?,
        Command::Ls { store, dataset, json } => ls(&store, dataset.as_deref(), json, out)?,
        Command::Stats { store, array, blocks, json } => {
            let handle = open_array(&open_store(&store)?, &array)?;
            report::stats(&handle, &array.to_string(), blocks, json, out)?;
        }
        Command::Attrs { store, target, json } => {
            let store = open_store(&store)?;
            let attributes = match &target {
                None | Some(AttrsTarget::Root) => store.attrs().all()?,
                Some(AttrsTarget::Named(DatasetOrArray::Dataset(dataset))) => {
                    open_dataset(&store, dataset)?.attrs().all()?
                }
                Some(AttrsTarget::Named(DatasetOrArray::Array(path))) => open_array(&store, path)?.attrs().all()?,
            };
            report::attrs(&attributes, json, out)?;
        }
        Command::Cat { store, array, slice, json, slab_bytes } => {
            let store = open_store(&store)?;
            let handle = open_array(&store, &array)?;
            let meta = handle.meta()?;
            let shape = &meta.shape;
            let sel = match &slice {
                Some(spec) => spec.resolve(shape).with_context(|| format!("--slice {spec} on {array} {shape:?}"))?,
                None => Selection::all(shape),
            };
            let value_bytes = inspect::value_bytes(&store, &array.dataset, &array.array, &meta)?;
            report::cat(&handle, &sel, json, report::SlabSize { bytes: slab_bytes, value_bytes }, out)?;
        }
        Command::Verify { store, json } => return maintain::verify(&store, json, quiet, out),
        Command::ConvertMeta { store, format, compression } => {
            maintain::convert_meta(&store, format, compression, quiet, out)?;
        }
        Command::Recompress { store, array, codec, level, shuffle } => {
            let codec = codec_of("recompress", codec, level);
            maintain::recompress(&open_store(&store)?, array.as_ref(), codec, shuffle.map(Shuffle::from), quiet, out)?;
        }
        Command::Compact { store, json } => maintain::compact(&store, json, quiet, out)?,
        Command::Rm { force, store, names } => remove::rm(&store, &names, force, out)?,
        Command::Mv { store, source, dest } => rename::mv(&store, &source, &dest, out)?,
        Command::Cp { store, source, dest } => rename::cp(&store, &source, &dest, out)?,
        Command::Import {
            store,
            array,
            file,
            chunks,
            dims,
            fill_value,
            codec,
            level,
            shuffle,
            overwrite,
            create,
            slab_bytes,
        } => {
            let codec = match (codec, level) {
                (None, Some(_)) => {
                    usage_error("import", ErrorKind::MissingRequiredArgument, "--level needs --codec zstd")
                }
                (codec, level) => codec.map(|codec| codec_of("import", codec, level)),
            };
            let shuffle = shuffle.map(Shuffle::from);
            let options = ImportOptions { chunks, dims, fill_value, codec, shuffle, overwrite, slab_bytes };
            import(&store, &array, &file, create, &options, quiet, out)?;
        }
        Command::Export { store, array, file, compression, force, slab_bytes } => {
            let compression = export_compression(&file, compression);
            refuse_inside_store(&store, &file)?;
            let handle = open_array(&open_store(&store)?, &array)?;
            let moved = transfer::export(&handle, &array.to_string(), &file, compression, force, slab_bytes, quiet)?;
            let summary = format!(
                "exported {array} -> {} ({}): {} {:?}, {}",
                printable(&file.display().to_string()),
                compression.name(),
                moved.dtype,
                moved.shape,
                report::human_bytes(moved.data_bytes)
            );
            summarize_export(out, &file, &summary)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The compression of an export to `file`: `given` (`--compression`), else the one its name
/// ends in. Exits with a usage error when the two differ.
fn export_compression(file: &Path, given: Option<Compression>) -> Compression {
    let named = Compression::of_path(file);
    match given {
        // A name ending in .npy says "not compressed" as plainly as .npy.zst says zstd.
        Some(given) if given != named && (named != Compression::None || has_extension(file, "npy")) => usage_error(
            "export",
            ErrorKind::ArgumentConflict,
            format!(
                "{} is named for {} but --compression {} was given",
                file.display(),
                if named == Compression::None {
                    "no compression".into()
                } else {
                    format!("{} compression", named.name())
                },
                given.name()
            ),
        ),
        Some(given) => given,
        // A name of another format (`.npy.bz2`, `.npz`) would get a file it does not hold.
        None if FOREIGN_EXTENSIONS.iter().any(|ext| has_extension(file, ext)) => usage_error(
            "export",
            ErrorKind::InvalidValue,
            format!(
                "{} is named for a format export does not write (it writes .npy, .npy.zst and .npy.gz); \
                 pass --compression none to write a plain .npy under that name",
                file.display()
            ),
        ),
        None => named,
    }
}

/// Extensions of formats `export` does not write, refused unless `--compression` is given.
const FOREIGN_EXTENSIONS: [&str; 13] =
    ["bz2", "xz", "lzma", "lz4", "npz", "zip", "7z", "br", "tgz", "tar", "h5", "hdf5", "nc"];

/// Refuses an export into the store it reads: `--force` would replace one of its files (the
/// metadata, say) with the array's.
fn refuse_inside_store(store: &Path, file: &Path) -> Result<()> {
    if transfer::is_stdout(file) {
        return Ok(());
    }
    let (Ok(store_dir), Some(name)) = (std::fs::canonicalize(store), file.file_name()) else { return Ok(()) };
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dest = std::fs::canonicalize(file).or_else(|_| std::fs::canonicalize(parent).map(|p| p.join(name)));
    // The data may be a link to a directory elsewhere, its fragments there too.
    let data_dir = std::fs::canonicalize(store.join("data")).unwrap_or_else(|_| store_dir.clone());
    match dest {
        Ok(dest) if dest.starts_with(&store_dir) || dest.starts_with(&data_dir) => {
            Err(anyhow!("{} is inside the store {} it would read; export elsewhere", file.display(), store.display()))
        }
        _ => Ok(()),
    }
}

/// `atlas import`: opens the store (or, with `create`, makes it), imports `file` into
/// `array`, and on failure leaves the store as it was: nothing committed, and a store made
/// for the import removed again.
fn import(
    path: &Path,
    array: &ArrayPath,
    file: &Path,
    create: bool,
    options: &ImportOptions,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let source = file;
    let file = transfer::source_name(source);
    let failed = || format!("import of {} into {array} failed; nothing was committed", file.display());
    // The file's header first: a store `--create` would make is not made for nothing.
    let source = transfer::open_source(source).with_context(failed)?;
    let made_from = first_missing(path);
    if create && let Some(missing) = &made_from {
        // `new/../old` would make `new` and put the store in `old`, which a failed import
        // would then remove as its own.
        let after = path.strip_prefix(missing).unwrap_or(path);
        if after.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(anyhow!(
                "cannot create a store at {}: `..` after {}, which does not exist",
                path.display(),
                missing.display()
            ));
        }
    }
    let (store, created) = match Atlas::open(path) {
        Err(Error::NotFound { kind: EntityKind::Store, .. }) if create => {
            let store = Atlas::create(path, StoreConfig::default()).map_err(|e| {
                remove_made_dirs(path, made_from.as_deref());
                match e {
                    e @ Error::AlreadyExists { .. } => anyhow::Error::new(e), // names the path already
                    e => anyhow::Error::new(e).context(format!("cannot create store {}", path.display())),
                }
            })?;
            (store, true)
        }
        Err(e @ Error::NotFound { kind: EntityKind::Store, .. }) => {
            // `--create` makes a store only where nothing is, or in an empty directory.
            let creatable = !path.exists() || path.read_dir().is_ok_and(|mut entries| entries.next().is_none());
            let hint = if creatable { "; pass --create to make a new store" } else { "" };
            return Err(anyhow!("{:#}{hint}", open_error(path, e)));
        }
        opened => (opened.map_err(|e| open_error(path, e))?, false),
    };
    let imported = {
        let _uncommitted = DiscardUncommitted(&store);
        transfer::import(&store, (&array.dataset, &array.array), file, source, options, quiet)
    };
    drop(store);
    if imported.is_err() && created {
        remove_new_store(path, made_from.as_deref());
    }
    let moved = match imported {
        Err(e) if e.downcast_ref::<transfer::CommittedThenFailed>().is_some() => {
            return Err(e.context(format!("import of {} into {array} was committed, then failed", file.display())));
        }
        imported => imported.with_context(failed)?,
    };
    writeln!(
        out,
        "imported {} -> {array}: {} {:?}, {}",
        printable(&file.display().to_string()),
        moved.dtype,
        moved.shape,
        report::human_bytes(moved.data_bytes)
    )?;
    Ok(())
}

/// Whether `path`'s last extension is `ext`.
fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Removes a store this run created for an import that then failed, so that the failed
/// import leaves nothing behind: the files `Atlas::create` made, then the directories it
/// made (`made_from` and those inside it down to `path`) where that left them empty. Only while
/// the store is still as `create` left it (generation 0), told under the writer lock: another
/// process may have started using it meanwhile, and must not commit between the check and
/// the removal. The metadata file goes first, so that from then on no one finds a store
/// there. Best effort.
fn remove_new_store(path: &Path, made_from: Option<&Path>) {
    let Ok(store) = Atlas::open(path) else { return };
    let Ok(hold) = store.begin_change() else { return };
    let removed = store.generation() == 0 && std::fs::remove_file(path.join(store.meta_file_name())).is_ok();
    if removed {
        let _ = std::fs::remove_dir(path.join("data"));
        let _ = std::fs::remove_file(path.join("atlas.lock"));
    }
    store.abandon(hold);
    drop(store);
    if removed {
        remove_made_dirs(path, made_from);
    }
}

/// Removes the directories `--create` made for a store at `path` (from `made_from`, the
/// outermost, down to `path`), innermost first; each only if it is empty.
fn remove_made_dirs(path: &Path, made_from: Option<&Path>) {
    let Some(made_from) = made_from else { return };
    for dir in path.ancestors() {
        if std::fs::remove_dir(dir).is_err() || dir == made_from {
            return;
        }
    }
}

/// The outermost of `path` and its ancestors that does not exist: the first directory a
/// store made at `path` creates.
fn first_missing(path: &Path) -> Option<PathBuf> {
    path.ancestors().take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists()).last().map(Path::to_path_buf)
}

/// Writes an export's summary line to `out`, or to stderr when `file` is not a regular
/// file: data sent to a pipe or a device (`/dev/stdout`) must not get it mixed in.
fn summarize_export(out: &mut dyn Write, file: &Path, summary: &str) -> io::Result<()> {
    if transfer::is_regular_file(file) { writeln!(out, "{summary}") } else { writeln!(io::stderr(), "{summary}") }
}

#[cfg(test)]
mod tests {
    use atlas::{ArraySpec, DType};
    use ndarray::Array1;

    use super::*;

    #[test]
    fn suggested_words_are_quoted_for_a_shell_where_they_need_it() {
        assert_eq!(shell_word("/tmp/a.atlas"), "/tmp/a.atlas");
        assert_eq!(shell_word("my store é"), "'my store é'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a\nb'c"), "$'a\\u000ab\\'c'");
        assert_eq!(suggested("ls", &["/s", "-run"]), "`atlas ls -- /s -run`");
        assert_eq!(suggested("compact", &["my s"]), "`atlas compact 'my s'`");
    }

    #[test]
    fn fill_values_are_words_of_one_dtype_or_numbers() {
        assert_eq!(parse_fill_value(" true"), Ok(FillArg::Bool(true)));
        assert_eq!(parse_fill_value("false"), Ok(FillArg::Bool(false)));
        assert_eq!(parse_fill_value("NaT"), Ok(FillArg::Instant(i64::MIN)));
        assert_eq!(parse_fill_value("1970-01-02"), Ok(FillArg::Instant(86_400_000_000_000)));
        assert_eq!(parse_fill_value("nan").map(|f| format!("{f:?}")), Ok("Number(Float(NaN))".into()));
        assert_eq!(parse_fill_value("-7"), Ok(FillArg::Number(Scalar::Int(-7))));
        assert!(parse_fill_value("2020-02-30").unwrap_err().contains("no ISO 8601 instant that exists"));
        assert!(parse_fill_value("1600-01-01").unwrap_err().contains("1677-09-21 to 2262-04-11"));
        assert_eq!(parse_fill_value("-1e-3"), Ok(FillArg::Number(Scalar::Float(-1e-3))));
    }

    #[test]
    fn fill_values_are_the_numbers_written_or_refused() {
        assert_eq!(parse_fill_number("-999"), Ok(Scalar::Int(-999)));
        assert_eq!(parse_fill_number("18446744073709551615"), Ok(Scalar::UInt(u64::MAX)));
        assert_eq!(parse_fill_number(" 1.5 "), Ok(Scalar::Float(1.5)));
        assert_eq!(parse_fill_number("123.0"), Ok(Scalar::Int(123)));
        assert_eq!(parse_fill_number("9007199254740993.0"), Ok(Scalar::Int(9_007_199_254_740_993)));
        assert_eq!(parse_fill_number("1e99"), Ok(Scalar::Float(1e99)));
        for negative_zero in ["-0.0", "-0."] {
            assert!(
                matches!(parse_fill_number(negative_zero), Ok(Scalar::Float(v)) if v.to_bits() == (-0.0f64).to_bits())
            );
        }
        assert_eq!(parse_fill_number("1."), Ok(Scalar::Int(1)));
        assert_eq!(parse_fill_number("-.5"), Ok(Scalar::Float(-0.5)));
        assert!(parse_fill_number("-9223372036854775809").unwrap_err().contains("64-bit"));
        assert!(parse_fill_number("18446744073709551616.0").unwrap_err().contains("64-bit"));
        assert!(parse_fill_number("1e-400").unwrap_err().contains("reads as 0"));
        assert_eq!(parse_fill_number("0e5"), Ok(Scalar::Float(0.0)));
        assert_eq!(parse_fill_number("-2.5e-3"), Ok(Scalar::Float(-2.5e-3)));
        assert!(matches!(parse_fill_number("nan"), Ok(Scalar::Float(v)) if v.is_nan()));
        assert_eq!(parse_fill_number("-inf"), Ok(Scalar::Float(f64::NEG_INFINITY)));
        assert_eq!(parse_fill_number("Infinity"), Ok(Scalar::Float(f64::INFINITY)));
        assert!(parse_fill_number("1e400").unwrap_err().contains("range"));
        assert!(parse_fill_number("-1e400").unwrap_err().contains("range"));
        assert!(parse_fill_number("9007199254740992.5").unwrap_err().contains("not exact"));
        assert!(parse_fill_number("x1").unwrap_err().contains("not a number"));
    }

    #[test]
    fn messages_quoting_control_bytes_reach_the_terminal_escaped() {
        let e = anyhow!("unknown field `next\0\0rray_id`").context("atlas.json: corrupt");
        assert_eq!(error_message(&e), "atlas.json: corrupt: unknown field `next\\0\\0rray_id`");
        assert_eq!(printable("\u{1b}[31mred\u{9b}"), "\\u{1b}[31mred\\u{9b}");
        assert!(matches!(printable("ü plain"), Cow::Borrowed("ü plain")));
    }

    #[test]
    fn a_whole_store_recompress_takes_in_an_array_another_process_added_since_the_store_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let store = Atlas::create(&path, StoreConfig::default()).unwrap();
        // Compressible, so that lz4 blocks are stored as lz4.
        let spec = || ArraySpec::new(DType::Int32, vec![4096]);
        let values = || Array1::from_iter((0..4096).map(|i| i % 7));
        let d = store.create_dataset("d").unwrap();
        d.define_array("a", spec()).unwrap().write(&[0], values().view()).unwrap();
        store.flush().unwrap();
        drop((d, store));
        let stale = Atlas::open(&path).unwrap();
        // Another process adds an array.
        let other = Atlas::open(&path).unwrap();
        let added = other.open_dataset("d").unwrap().define_array("b", spec()).unwrap();
        added.write(&[0], values().view()).unwrap();
        other.flush().unwrap();
        drop((added, other));

        let mut out = Vec::new();
        maintain::recompress(&stale, None, Codec::Lz4, Some(Shuffle::Off), true, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("recompressed 2 arrays"));
        let reopened = Atlas::open(&path).unwrap();
        for array in ["a", "b"] {
            let by_codec = inspect::block_summary(&reopened, "d", array).unwrap().by_codec;
            assert_eq!(by_codec.keys().collect::<Vec<_>>(), ["lz4"], "{array}: {by_codec:?}");
        }
    }
}

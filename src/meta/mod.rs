//! Room `meta`: the metadata file's types (store, datasets, array schemas, attributes,
//! dtypes, codec settings), name rules and the six on-disk encodings. No I/O.

mod attr;
mod bytes;
mod codec;
mod dtype;
mod file;
mod float;
mod limits;
mod name;
mod scalar;
mod schema;
mod stats;
mod unique;

pub use attr::{AttrValue, Attributes};
pub use codec::{Codec, Shuffle};
pub use dtype::DType;
pub use file::{MetaCompression, MetaFormat};
pub use limits::Limits;
pub use scalar::Scalar;
pub use schema::ArrayMeta;
pub use stats::{ArrayStats, BlockStats};
pub(crate) use stats::{check_min_max, check_sum};

#[cfg(feature = "test-util")]
pub(crate) use file::reseal;
pub(crate) use file::{ALL_ENCODINGS, MetaDecodeError, decode_meta, encode_meta, meta_file_name, parse_meta_file_name};
pub(crate) use name::{validate_attribute_key, validate_name};
pub use schema::MAX_NDIM;
pub(crate) use schema::{
    DatasetMeta, FORMAT_VERSION, FragmentMeta, MAX_ATTR_DEPTH, MAX_CHUNK_BYTES, MAX_DICTIONARY_BYTES, StoreMeta,
    checked_product, fragment_name, is_fragment_name,
};

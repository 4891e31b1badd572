/// What can go wrong with a feature table, by kind a caller can match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schema that cannot be built: no fields, a name used twice, an
    /// unknown dtype, a zero-sized field.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),

    /// The table exists in the segment with another definition.
    #[error(
        "table {table:?} already exists with another schema (stored: {stored}; given: {given})"
    )]
    SchemaMismatch {
        table: String,
        stored: String,
        given: String,
    },

    /// No table of that name in the segment.
    #[error("no feature table {0:?} in this cache")]
    NoSuchTable(String),

    #[error("no field {field:?} in table {table:?} (fields: {known})")]
    UnknownField {
        table: String,
        field: String,
        known: String,
    },

    /// A value of the wrong dtype or number of elements for its field, or
    /// a packed row of the wrong size.
    #[error("field {field:?}: {why}")]
    BadValue { field: String, why: String },

    /// An entity id too long for a key.
    #[error("entity id of {len} bytes is too long (at most {max})")]
    IdTooLong { len: usize, max: usize },

    /// An output buffer of the wrong size.
    #[error("output of {got} values, expected {want}")]
    BadOutput { got: usize, want: usize },

    #[error(transparent)]
    Segment(#[from] strata_shm::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

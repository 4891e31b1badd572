//! Typed feature tables over L0: a schema compiles to a packed row; each
//! entity's row is one L0 value, published atomically, read in place as a
//! typed record or assembled into a model's input vector.
//!
//! ```
//! use strata_features::{DType, FeatureTable, Field, Schema};
//! # let dir = std::env::temp_dir().join(format!("ft-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let seg = strata_shm::Segment::open_or_create("doc", &strata_shm::SegmentOptions::default().memory(8 << 20).dir(&dir))?;
//! let schema = Schema::new("user", 1, vec![
//!     Field::new("age", DType::I32, &[]),
//!     Field::new("emb", DType::F32, &[4]),
//! ])?;
//! let users = FeatureTable::create(&seg, schema)?;
//! let mut row = users.row();
//! row.set("age", &[42i32])?.set("emb", &[0.5f32, 1.0, 1.5, 2.0])?;
//! users.put_row(b"u1", &row.finish())?;
//!
//! let rec = users.get(b"u1")?.unwrap();
//! assert_eq!(rec.scalar::<i32>("age")?, 42);
//! let plan = users.plan(None)?;                 // every numeric field, in order
//! let mut x = vec![0f32; plan.width()];
//! assert!(users.assemble(b"u1", &plan, &mut x)?);
//! assert_eq!(x, [42.0, 0.5, 1.0, 1.5, 2.0]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dtype;
mod error;
mod evolve;
mod schema;
mod table;

pub use dtype::DType;
pub use error::{Error, Result};
pub use evolve::{is_widening, Evolved};
pub use schema::{Field, Layout, Schema, Slot};
pub use table::{Element, FeatureTable, OutValue, Plan, Record, RowWriter, WRITTEN_BYTES};

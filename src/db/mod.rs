//! Everything about reaching PostgreSQL: connection settings resolved like
//! libpq, TLS, the pool, the scratch cluster and the payments fixture, the
//! server's values perfaudit reads in a form of its own (`json` as text),
//! and the values it binds (`--param`, as text).

pub mod cancel;
pub mod conninfo;
pub mod describe;
pub mod errors;
pub mod fixture;
pub mod json;
pub mod params;
pub mod pgpass;
pub mod pool;
pub mod pooler;
pub mod savepoint;
pub mod scratch;
pub mod settings;
pub mod tls;

pub use json::JsonText;
pub use pool::{Database, PoolOptions};
pub use scratch::{ScratchCluster, ScratchOptions, ScratchTls};
pub use settings::{ConnectionSettings, Password, Sources, SslMode};

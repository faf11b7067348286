//! One module per group of tables. Writers take `&mut AnyConnection`, so any number of
//! them compose inside one transaction (see `SqlStore::save_step`); readers that need no
//! consistent snapshot take the pool.

pub(crate) mod checks;
pub(crate) mod cluster;
pub(crate) mod events;
pub(crate) mod generations;
pub(crate) mod outbox;
pub(crate) mod phone_page;
pub(crate) mod phones;
pub(crate) mod state;

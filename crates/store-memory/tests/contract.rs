//! The in-memory store passes the persistence contract.

use std::sync::Arc;

use store_memory::MemoryStore;

store_contract::store_contract!(|_clock| async { Arc::new(MemoryStore::new()) });

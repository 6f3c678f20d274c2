//! Scenarios more than one test binary runs.

pub mod flash_sale;

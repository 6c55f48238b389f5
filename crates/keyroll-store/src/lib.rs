//! # keyroll-store

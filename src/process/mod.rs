//! The process around the controller: its command line ([`config`], the flags' values in
//! [`flag_values`]), start-up and shutdown ([`run`]) and why it failed ([`error`]), leader
//! election ([`leader`]) and the admin HTTP port ([`admin`]).

pub mod admin;
pub mod config;
pub mod error;
pub mod flag_values;
pub mod leader;
pub mod run;

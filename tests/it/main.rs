//! The integration suite: one test binary that starts the real server and talks to it over HTTP and WebSockets.
//!
//! Every scenario runs twice, on SQLite and on PostgreSQL (`HELPLINE_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/test`). Outside CI an unreachable
//! PostgreSQL is reported as SKIPPED; with `CI` set it fails the test.

mod helpers;

mod abuse;
mod alerts;
mod ari_fake;
mod asterisk;
mod accounts;
mod adversarial;
mod bad_input;
mod cases;
mod channel;
mod chat_flow;
mod cli;
mod cluster;
mod durability;
mod logins;
mod exchange;
mod privacy;
mod referrals;
mod faults;
mod hours;
mod never_silent;
mod openapi;
mod reports;
mod routing_live;
mod scope;
mod secrets;
mod staffing;
mod staff_locale;
mod supervisor;
mod telephony;
mod wrapup;
mod widget;
mod canned;
mod waiting;
mod restored;
mod settings;
mod transfer;

//! The integration suite: one test binary that starts the real server and talks to it over HTTP and WebSockets.
//!
//! Every scenario runs twice, on SQLite and on PostgreSQL (`HELPLINE_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/test`). Outside CI an unreachable
//! PostgreSQL is reported as SKIPPED; with `CI` set it fails the test.

mod helpers;

mod abuse;
mod accounts;
mod admin;
mod adversarial;
mod alerts;
mod ari_fake;
mod asterisk;
mod backup;
mod bad_input;
mod canned;
mod cases;
mod channel;
mod chat_flow;
mod cli;
mod cluster;
mod continuity;
mod durability;
mod exchange;
mod faults;
mod hours;
mod kannel;
mod logins;
mod never_silent;
mod openapi;
mod privacy;
mod referrals;
mod reports;
mod restored;
mod retention;
mod routing_live;
mod schemathesis;
mod scope;
mod secrets;
mod settings;
mod sms;
mod staff_locale;
mod staffing;
mod supervisor;
mod telephony;
mod transfer;
mod waiting;
mod widget;
mod wrapup;

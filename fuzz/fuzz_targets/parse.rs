//! Fuzzes the expression parser: no input may panic, and whatever parses must print back to
//! source that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = runner::expr::parse(source) {
        let printed = expr.to_string();
        match runner::expr::parse(&printed) {
            Ok(again) => assert!(again.same_ast(&expr), "{source:?} printed as {printed:?}"),
            Err(e) => panic!("{source:?} printed as {printed:?} does not parse: {e}"),
        }
    }
    let _ = runner::expr::parse_template(source);
    let _ = runner::expr::parse_condition(source);
});

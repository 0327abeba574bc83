//! Bounded inputs and outputs: nesting depth and size where values enter, readable records.

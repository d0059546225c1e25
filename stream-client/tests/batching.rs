//! Property: however rows arrive (one by one or in blocks of any size) and
//! whatever the caps, the batches reassemble the input exactly, in order,
//! each within the caps, with contiguous row numbers.

use proptest::prelude::*;
use stream_client::Batcher;

proptest! {
    #[test]
    fn batches_reassemble_the_input(
        columns in 1usize..6,
        rows in 0usize..400,
        max_rows in 1usize..70,
        max_bytes in 1usize..2000,
        blocks in proptest::collection::vec(0usize..40, 1..20),
    ) {
        let input: Vec<f32> = (0..rows * columns).map(|i| i as f32 * 0.5 - 7.0).collect();
        let mut batcher = Batcher::new(columns, max_rows, max_bytes);
        let cap = batcher.max_rows();
        prop_assert!(cap >= 1 && cap <= max_rows);
        let mut batches = Vec::new();
        // Feed whole-row blocks of varying sizes, then single rows.
        let mut at = 0;
        for (i, block_rows) in blocks.iter().cycle().enumerate() {
            if at >= rows {
                break;
            }
            let take = (*block_rows).max(1).min(rows - at);
            let slice = &input[at * columns..(at + take) * columns];
            if i % 2 == 0 {
                batches.extend(batcher.push_block(slice).expect("whole rows"));
            } else {
                for row in slice.chunks_exact(columns) {
                    batches.extend(batcher.push_row(row).expect("right width"));
                }
            }
            at += take;
        }
        batches.extend(batcher.flush());
        let mut next = 0u64;
        let mut bytes = Vec::new();
        for b in &batches {
            prop_assert_eq!(b.first_row, next);
            prop_assert!(b.rows >= 1 && b.rows <= cap);
            prop_assert_eq!(b.body.len(), b.rows * columns * 4);
            next += b.rows as u64;
            bytes.extend_from_slice(&b.body);
        }
        prop_assert_eq!(next as usize, rows);
        let expected: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
        prop_assert_eq!(bytes, expected);
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused(columns in 2usize..6, bad in 0usize..12) {
        prop_assume!(bad != columns);
        let mut batcher = Batcher::new(columns, 8, 1 << 20);
        prop_assert!(batcher.push_row(&vec![0.0; bad]).is_err());
    }
}

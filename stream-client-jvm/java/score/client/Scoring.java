package score.client;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.TaskCompletionListener;
import scala.collection.immutable.ArraySeq;

/**
 * One partition being scored: drives the native session (see stream-client-jvm/src/lib.rs).
 * Each turn the session either wants a block of rows, filled here from Spark's iterator into a
 * direct buffer, or hands back the next rows' results in input order, scored or failed (a row
 * that could not be sent is reported to the native side, which puts it back in its place). Each
 * result is paired with the oldest row's {@code keep} values ({@link #kept}). Used by one
 * thread, the task's.
 */
final class Scoring implements Iterator<Row>, AutoCloseable {

    private final Scorer scorer;
    private final Iterator<Row> input;
    private final String[] features;
    private final String[] keep;
    private int[] keepFields;
    private Layout layout;
    private boolean started;
    /** Features per row, fixed by the partition's first row. */
    private int columns;
    /** Scores per row. */
    private int width;
    private long session;
    private ByteBuffer block;
    /** Text layout: the block's texts as UTF-8, end offsets (Arrow utf8's layout), reused. */
    private byte[] textBytes;
    private int[] textOffsets;
    private float[] scores;
    /** The first good row, read to learn the width before the session begins. */
    private Row peeked;
    private boolean inputDone;
    private boolean finished;
    /** The pass-through values of every row read and not yet output, in input order. */
    private final ArrayDeque<Object[]> kept = new ArrayDeque<>();
    private final ArrayDeque<Row> ready = new ArrayDeque<>();

    Scoring(Scorer scorer, Iterator<Row> input, String[] features, String[] keep) {
        this.scorer = scorer;
        this.input = input;
        this.features = features;
        this.keep = keep;
        TaskContext task = TaskContext.get();
        if (task != null) {
            // A task that stops reading early (limit) or fails still ends its session, which
            // aborts the requests in flight.
            task.addTaskCompletionListener((TaskCompletionListener) ctx -> close());
        }
    }

    @Override
    public boolean hasNext() {
        while (ready.isEmpty() && !finished) {
            advance();
        }
        return !ready.isEmpty();
    }

    @Override
    public Row next() {
        if (!hasNext()) {
            throw new NoSuchElementException();
        }
        return ready.poll();
    }

    /** Ends the session (aborting its requests in flight); idempotent. */
    @Override
    public synchronized void close() {
        if (session != 0) {
            Native.close(session);
            session = 0;
        }
        finished = true;
    }

    private void advance() {
        if (!started) {
            start();
            return;
        }
        int r;
        try {
            r = Native.turn(session, scores);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        if (r == Native.FEED) {
            fill();
        } else if (r == 0) {
            close();
        } else if (r > 0) {
            FloatBuffer view = FloatBuffer.wrap(scores);
            for (int i = 0; i < r; i++) {
                Object score;
                if (width == 1) {
                    score = view.get(i);
                } else {
                    float[] row = new float[width];
                    view.position(i * width);
                    view.get(row);
                    score = ArraySeq.unsafeWrapArray(row);
                }
                ready.add(output(score, null));
            }
        } else {
            int failed = -r - 1;
            String why = Native.lastError(session);
            for (int i = 0; i < failed; i++) {
                ready.add(output(null, why));
            }
        }
    }

    /** Learns the layout and the width from the first good row, then begins the session. */
    private void start() {
        started = true;
        session = scorer.open();
        while (peeked == null && input.hasNext()) {
            Row row = input.next();
            if (layout == null) {
                StructType schema = row.schema();
                if (schema == null) {
                    throw new IllegalArgumentException(
                            "the rows carry no schema: score a Dataset<Row>'s partitions");
                }
                layout = Layout.of(schema, features);
                keepFields = new int[keep.length];
                for (int i = 0; i < keep.length; i++) {
                    keepFields[i] = Scorer.field(schema, keep[i]);
                }
            }
            int w = layout.width(row);
            if (w < 0) {
                reject(row, 0, "feature column " + layout.names[0] + " is null");
            } else {
                columns = w;
                peeked = row;
            }
        }
        if (peeked == null) {
            // An empty partition, or only rows that failed here: no server asked.
            inputDone = true;
            Native.feed(session, null, 0, 1);
            scores = new float[0];
            return;
        }
        width = scorer.scoreColumns();
        int rows = scorer.batchRows();
        if (layout.text) {
            textOffsets = new int[rows + 1];
            textBytes = new byte[Math.multiplyExact(rows, 64)];
        } else {
            block = ByteBuffer.allocateDirect(
                    Math.multiplyExact(Math.multiplyExact(rows, columns), 4))
                    .order(ByteOrder.nativeOrder());
        }
        scores = new float[Math.multiplyExact(rows, width)];
        Native.begin(session, columns, width);
    }

    /** Fills the block with up to batchRows rows (local failures skip it) and feeds it. */
    private void fill() {
        if (layout.text) {
            fillTexts();
            return;
        }
        FloatBuffer view = block.clear().asFloatBuffer();
        int capacity = view.capacity() / columns;
        int rows = 0;
        int looked = 0;
        while (rows < capacity && looked < capacity) {
            Row row = nextRow();
            if (row == null) {
                break;
            }
            looked++;
            String bad = layout.write(row, view, columns);
            if (bad == null) {
                kept.add(keepValues(row));
                rows++;
            } else {
                reject(row, rows, bad);
            }
        }
        if (rows > 0 || inputDone) {
            Native.feed(session, block, rows, columns);
            if (rows > 0 && inputDone) {
                Native.feed(session, block, 0, columns);
            }
        }
    }

    /**
     * {@link #fill} for a text column: up to batchRows texts, laid out as Arrow's utf8 (rows + 1
     * int32 offsets in native order, then the UTF-8 bytes) in the direct block; the native side
     * sends them as one Arrow column named after the feature column.
     */
    private void fillTexts() {
        int capacity = textOffsets.length - 1;
        int rows = 0;
        int looked = 0;
        int end = 0;
        while (rows < capacity && looked < capacity) {
            Row row = nextRow();
            if (row == null) {
                break;
            }
            looked++;
            if (row.isNullAt(layout.fields[0])) {
                reject(row, rows, "feature column " + layout.names[0] + " is null");
                continue;
            }
            byte[] utf8 = row.getString(layout.fields[0]).getBytes(StandardCharsets.UTF_8);
            if (utf8.length > Integer.MAX_VALUE - 8 - end) {
                reject(row, rows, "the texts of one batch pass 2 GiB; lower batchRows");
                continue;
            }
            if (end + utf8.length > textBytes.length) {
                textBytes = Arrays.copyOf(textBytes,
                        (int) Math.min(Integer.MAX_VALUE - 8,
                                Math.max(2L * textBytes.length, (long) end + utf8.length)));
            }
            System.arraycopy(utf8, 0, textBytes, end, utf8.length);
            end += utf8.length;
            textOffsets[++rows] = end;
            kept.add(keepValues(row));
        }
        if (rows > 0) {
            int need = Math.addExact(Math.multiplyExact(rows + 1, 4), end);
            if (block == null || block.capacity() < need) {
                block = ByteBuffer.allocateDirect(Math.max(need, block == null ? 0
                        : (int) Math.min(Integer.MAX_VALUE, 2L * block.capacity())))
                        .order(ByteOrder.nativeOrder());
            }
            block.clear();
            block.asIntBuffer().put(textOffsets, 0, rows + 1);
            block.position((rows + 1) * 4);
            block.put(textBytes, 0, end);
            Native.feedTexts(session, block, rows, end, layout.names[0]);
        }
        if (inputDone) {
            Native.feed(session, null, 0, 1);
        }
    }

    /** The next input row (the one peeked at start first), or null once the input has ended. */
    private Row nextRow() {
        if (peeked != null) {
            Row row = peeked;
            peeked = null;
            return row;
        }
        if (input.hasNext()) {
            return input.next();
        }
        inputDone = true;
        return null;
    }

    /**
     * A row that cannot be sent, after {@code before} rows of the block being filled: the native
     * side puts it in its place among the results (a null score and the reason), or, unless
     * errors go to a column, throws naming the row.
     */
    private void reject(Row row, int before, String why) {
        kept.add(keepValues(row));
        try {
            Native.reject(session, before, why);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private Object[] keepValues(Row row) {
        Object[] values = new Object[keepFields.length];
        for (int i = 0; i < keepFields.length; i++) {
            values[i] = row.get(keepFields[i]);
        }
        return values;
    }

    /** The oldest row's output: its pass-through values, the score and the error column. */
    private Row output(Object score, String error) {
        Object[] keep = kept.poll();
        if (keep == null) {
            throw new IllegalStateException("the native session returned more rows than read");
        }
        boolean column = scorer.errorsAsColumn();
        Object[] values = Arrays.copyOf(keep, keep.length + (column ? 2 : 1));
        values[keep.length] = score;
        if (column) {
            values[keep.length + 1] = error;
        }
        return RowFactory.create(values);
    }
}

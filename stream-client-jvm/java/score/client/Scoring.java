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
 * direct buffer, or hands back the next scored batch, matched here with the rows that were sent
 * (their {@code keep} values wait in {@link #sent}). Used by one thread, the task's.
 */
final class Scoring implements Iterator<Row>, AutoCloseable {
    /** An input row on its way: its passthrough values, and why it failed if it did locally. */
    private static final class Pending {
        final Object[] keep;
        final String error;

        Pending(Object[] keep, String error) {
            this.keep = keep;
            this.error = error;
        }
    }

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
    /** The first good row, read to learn the width before the session opens. */
    private Row peeked;
    private long rowsRead;
    private boolean inputDone;
    private boolean finished;
    private final ArrayDeque<Pending> sent = new ArrayDeque<>();
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
            release();
            close();
        } else if (r > 0) {
            FloatBuffer view = FloatBuffer.wrap(scores);
            for (int i = 0; i < r; i++) {
                Pending p = nextSent();
                Object score;
                if (width == 1) {
                    score = view.get(i);
                } else {
                    float[] row = new float[width];
                    view.position(i * width);
                    view.get(row);
                    score = ArraySeq.unsafeWrapArray(row);
                }
                ready.add(output(p.keep, score, null));
            }
            release();
        } else {
            int failed = -r - 1;
            String why = Native.lastError(session);
            for (int i = 0; i < failed; i++) {
                ready.add(output(nextSent().keep, null, why));
            }
            release();
        }
    }

    /** Learns the layout and the width from the first good row, then opens the session. */
    private void start() {
        started = true;
        while (peeked == null && input.hasNext()) {
            Row row = input.next();
            rowsRead++;
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
                fail(row, "feature column " + layout.names[0] + " is null");
            } else {
                columns = w;
                peeked = row;
            }
        }
        if (peeked == null) {
            // An empty partition, or only rows that failed here: no server asked.
            release();
            finished = true;
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
        session = scorer.open(columns, width);
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
                sent.add(new Pending(keepValues(row), null));
                rows++;
            } else {
                fail(row, bad);
            }
        }
        if (rows > 0 || inputDone) {
            Native.feed(session, block, rows, columns);
            if (rows > 0 && inputDone) {
                Native.feed(session, block, 0, columns);
            }
        }
        release();
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
                fail(row, "feature column " + layout.names[0] + " is null");
                continue;
            }
            byte[] utf8 = row.getString(layout.fields[0]).getBytes(StandardCharsets.UTF_8);
            if (utf8.length > Integer.MAX_VALUE - 8 - end) {
                fail(row, "the texts of one batch pass 2 GiB; lower batchRows");
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
            sent.add(new Pending(keepValues(row), null));
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
        release();
    }

    /** The next input row (the one peeked at start first), or null once the input has ended. */
    private Row nextRow() {
        if (peeked != null) {
            Row row = peeked;
            peeked = null;
            return row;
        }
        if (input.hasNext()) {
            Row row = input.next();
            rowsRead++;
            return row;
        }
        inputDone = true;
        return null;
    }

    /** A row that cannot be sent: the task fails, or the row gets a null score and the reason. */
    private void fail(Row row, String why) {
        String message = "row " + (rowsRead - 1) + " of the partition: " + why;
        if (!scorer.errorsAsColumn()) {
            close();
            throw new ScoreException(message);
        }
        sent.add(new Pending(keepValues(row), message));
    }

    /** The oldest row sent, after any locally failed rows before it. */
    private Pending nextSent() {
        release();
        Pending p = sent.poll();
        if (p == null || p.error != null) {
            throw new IllegalStateException("the native session returned more rows than sent");
        }
        return p;
    }

    /** Moves the locally failed rows at the head of {@link #sent} to the output. */
    private void release() {
        while (!sent.isEmpty() && sent.peek().error != null) {
            Pending p = sent.poll();
            ready.add(output(p.keep, null, p.error));
        }
    }

    private Object[] keepValues(Row row) {
        Object[] values = new Object[keepFields.length];
        for (int i = 0; i < keepFields.length; i++) {
            values[i] = row.get(keepFields[i]);
        }
        return values;
    }

    private Row output(Object[] kept, Object score, String error) {
        boolean column = scorer.errorsAsColumn();
        Object[] values = new Object[kept.length + (column ? 2 : 1)];
        System.arraycopy(kept, 0, values, 0, kept.length);
        values[kept.length] = score;
        if (column) {
            values[kept.length + 1] = error;
        }
        return RowFactory.create(values);
    }
}

package score.client;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * Scores Spark rows with a fleet of score-servers through the Rust stream-client: rows are
 * batched, at most {@code inFlight} requests are in flight per task, transient failures are
 * retried on another server, and results come back in input order. Every input row yields one
 * output row, or the task fails with a {@link ScoreException} carrying the server's sentence (or,
 * with {@code errors("column")}, a null score and the reason in an error column).
 *
 * <p>A {@code Scorer} holds configuration only and is {@link Serializable}: build it on the
 * driver and use it inside {@code mapPartitions}; every executor JVM shares one native client per
 * configuration (one runtime, one connection pool).
 *
 * <pre>{@code
 * Scorer scorer = Scorer.builder("http://scorer-1:8000", "http://scorer-2:8000")
 *     .model("churn").build();
 * Dataset<Row> scored = scorer.transform(df, new String[] {"features"},
 *     new String[] {"id"}, "score");
 * }</pre>
 */
public final class Scorer implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The {@code errors} settings. */
    private static final List<String> ERRORS = List.of("raise", "column");

    /**
     * The client's settings by name, as the Rust core parses them ({@code stream_client::settings}):
     * the builder's methods and {@link Builder#set} fill it; names, defaults and checks are the
     * core's.
     */
    private final LinkedHashMap<String, String> settings;
    private final String errors;
    private final String errorColumn;
    /** {@link #config()}'s number: per JVM, so not serialized. */
    private transient long config;

    private Scorer(Builder b) {
        this.settings = new LinkedHashMap<>(b.settings);
        this.errors = b.errors;
        this.errorColumn = b.errorColumn;
    }

    /**
     * A builder for servers at {@code urls} ({@code http://host:port}, or an nginx in front).
     *
     * @param urls the servers' base URLs; requests are spread over them
     * @return the builder
     */
    public static Builder builder(String... urls) {
        return new Builder(urls);
    }

    /**
     * Settings of a {@link Scorer}; a setting not given takes the Rust client's default
     * (stream-client's {@code ClientConfig::default}, also listed in the README).
     */
    public static final class Builder {
        private final LinkedHashMap<String, String> settings = new LinkedHashMap<>();
        private String errors = "raise";
        private String errorColumn = "score_error";

        private Builder(String[] urls) {
            for (String url : Objects.requireNonNull(urls, "urls")) {
                Objects.requireNonNull(url, "a server URL is null");
            }
            settings.put("urls", String.join(",", urls));
            set("token", System.getenv("SCORE_TOKEN"));
        }

        /**
         * Any client setting by name, as text: the Rust core parses and checks it when {@link
         * #build} runs ({@code IllegalArgumentException} naming an unknown one, with the list).
         * For example {@code set("user_agent", "nightly-churn")} (added to the {@code User-Agent}
         * header), {@code set("keep_going", "true")}, {@code set("backoff_max", "30s")}.
         *
         * @param name the setting's name, as the docs list it ({@code max_attempts})
         * @param value its value; {@code null} takes the default
         * @return this builder
         */
        public Builder set(String name, String value) {
            Objects.requireNonNull(name, "name");
            if (value == null) {
                settings.remove(name);
            } else {
                settings.put(name, value);
            }
            return this;
        }

        /** @param name the model to score with ({@code /models/NAME}); default: the server's */
        public Builder model(String name) {
            set("model", name);
            return this;
        }

        /** @param name the model output to return ({@code ?output=}); default: the model's */
        public Builder output(String name) {
            set("output", name);
            return this;
        }

        /**
         * @param token bearer token for servers started with {@code --auth-token-file}; default:
         *     the environment variable {@code SCORE_TOKEN} where the builder runs
         */
        public Builder token(String token) {
            set("token", token);
            return this;
        }

        /** @param rows most rows per request */
        public Builder batchRows(int rows) {
            set("batch_rows", Integer.toString(positive("batchRows", rows)));
            return this;
        }

        /**
         * @param requests most requests in flight per task: the backpressure window. Each
         *     server's share adapts to its answers (a few more than it has workers) unless
         *     {@link #adaptive(boolean)} turns that off; this is the ceiling.
         */
        public Builder inFlight(int requests) {
            set("in_flight", Integer.toString(positive("inFlight", requests)));
            return this;
        }

        /** @param seconds per-attempt timeout */
        public Builder timeoutSeconds(double seconds) {
            if (!(seconds > 0) || Double.isInfinite(seconds)) {
                throw new IllegalArgumentException(
                        "timeoutSeconds must be a positive number of seconds, got " + seconds);
            }
            set("timeout", Double.toString(seconds));
            return this;
        }

        /** @param attempts most attempts per batch, the first included */
        public Builder maxAttempts(int attempts) {
            set("max_attempts", Integer.toString(positive("maxAttempts", attempts)));
            return this;
        }

        /**
         * @param on adapt each server's concurrency to its answers (default true); false keeps
         *     {@link #inFlight(int)} requests in flight per task
         */
        public Builder adaptive(boolean on) {
            set("adaptive", Boolean.toString(on));
            return this;
        }

        /**
         * @param version the model version to score with ({@code /models} lists it; {@link
         *     Scorer#servedVersion()} gives the one served now). A server serving another answers
         *     409 and the batch goes to another; when none serves it the task fails naming both.
         *     Default: each executor JVM pins the version of its first answer. For one version
         *     across a whole Spark job, pin it on the driver.
         */
        public Builder modelVersion(String version) {
            set("model_version", version);
            return this;
        }

        /**
         * @param cut for an embedding model (a string column in, vectors out): cut texts longer
         *     than the model's token limit there; default false: such a text fails its batch
         *     with the server's sentence naming it
         */
        public Builder truncate(boolean cut) {
            set("truncate", Boolean.toString(cut));
            return this;
        }

        /**
         * @param whole for an embedding model: embed texts longer than the model's token limit
         *     whole, in windows of the limit pooled into one vector (weighted by their tokens)
         */
        public Builder chunk(boolean whole) {
            set("chunk", Boolean.toString(whole));
            return this;
        }

        /**
         * @param tokens with {@link #chunk}: tokens each window shares with the one before
         *     (default 0; less than half a window)
         */
        public Builder chunkOverlap(int tokens) {
            set("chunk_overlap", Integer.toString(tokens));
            return this;
        }

        /**
         * @param name for an embedding model: the prompt put before every text, one of the
         *     model's ({@code "query"}, {@code "passage"}); default: the model's default prompt
         */
        public Builder promptName(String name) {
            set("prompt_name", name);
            return this;
        }

        /**
         * @param mode {@code "raise"} (default): a batch that cannot be scored fails the task
         *     with a {@link ScoreException}; {@code "column"}: its rows get a null score and the
         *     reason in the error column, and the job goes on
         */
        public Builder errors(String mode) {
            if (!ERRORS.contains(mode)) {
                throw new IllegalArgumentException(
                        "errors must be one of " + ERRORS + ", got " + mode);
            }
            this.errors = mode;
            return this;
        }

        /** @param name the error column's name with {@code errors("column")} */
        public Builder errorColumn(String name) {
            this.errorColumn = Objects.requireNonNull(name, "errorColumn");
            return this;
        }

        /**
         * Checks the settings (with the Rust client's own checks) and builds the scorer.
         *
         * @return the scorer
         * @throws IllegalArgumentException naming the setting that is wrong
         */
        public Scorer build() {
            Scorer s = new Scorer(this);
            s.config();
            return s;
        }

        private static int positive(String what, int n) {
            if (n < 1) {
                throw new IllegalArgumentException(what + " must be at least 1, got " + n);
            }
            return n;
        }
    }

    /** Scores per row by configuration, asked of {@code /models} once per JVM. */
    private static final Map<Long, Integer> WIDTHS = new ConcurrentHashMap<>();

    /**
     * Scores per row of the chosen output, from the first server whose {@code /models} answers
     * (cached per JVM).
     *
     * @return the width of the score
     * @throws ScoreException when no server describes the model
     */
    public int scoreColumns() {
        // Equal settings have one config number per JVM: the cache's key.
        return WIDTHS.computeIfAbsent(config(), Native::scoreColumns);
    }

    /**
     * The schema of {@link #score}'s rows: the {@code keep} columns, the score ({@code float}
     * when the output has one column, else {@code array<float>}) and, with {@code
     * errors("column")}, the error column ({@code string}). Asks {@code /models} for the width.
     *
     * @param input the input's schema
     * @param features the feature columns: numeric columns in the model's order, or one array
     *     (or ML vector) column; {@code null}: the only array column, else every float or double
     *     column. For an embedding model, one string column: its texts are sent as they are
     *     (Arrow utf8) and the score is the embedding, {@code array<float>}
     * @param keep columns passed through unchanged
     * @param scoreCol the score column's name
     * @return the output schema
     */
    public StructType outputSchema(StructType input, String[] features, String[] keep,
            String scoreCol) {
        Layout.of(input, features); // checks the feature columns
        List<StructField> fields = new ArrayList<>();
        for (String name : keepOrEmpty(keep)) {
            fields.add(input.apply(field(input, name)));
        }
        boolean column = errors.equals("column");
        checkNames(keep, scoreCol);
        fields.add(DataTypes.createStructField(scoreCol,
                scoreColumns() == 1 ? DataTypes.FloatType
                        : DataTypes.createArrayType(DataTypes.FloatType, false),
                column));
        if (column) {
            fields.add(DataTypes.createStructField(errorColumn, DataTypes.StringType, true));
        }
        return DataTypes.createStructType(fields);
    }

    /**
     * Scores a partition's rows: for {@code df.mapPartitions(f, Encoders.row(outputSchema))}.
     * Rows are pulled from {@code rows} only as requests complete, so memory stays flat whatever
     * the partition's size; the iterator ends only when every row has its result. Leaving it
     * unfinished (e.g. {@code limit}) cancels the requests in flight when the Spark task ends;
     * outside a Spark task, read it to the end or close it (it is {@link AutoCloseable}).
     *
     * @param rows the partition
     * @param features see {@link #outputSchema}
     * @param keep see {@link #outputSchema}
     * @param scoreCol see {@link #outputSchema}
     * @return the scored rows, in input order, with the schema {@link #outputSchema} describes
     */
    public Iterator<Row> score(Iterator<Row> rows, String[] features, String[] keep,
            String scoreCol) {
        checkNames(keep, scoreCol);
        return new Scoring(this, rows, features, keepOrEmpty(keep));
    }

    /**
     * Scores a whole Dataset: {@code mapPartitions} over {@link #score} with {@link
     * #outputSchema}.
     *
     * @param df the rows to score
     * @param features see {@link #outputSchema}
     * @param keep see {@link #outputSchema}
     * @param scoreCol see {@link #outputSchema}
     * @return the scored Dataset
     */
    public Dataset<Row> transform(Dataset<Row> df, String[] features, String[] keep,
            String scoreCol) {
        StructType schema = outputSchema(df.schema(), features, keep, scoreCol);
        Scorer self = this;
        MapPartitionsFunction<Row, Row> f = rows -> self.score(rows, features, keep, scoreCol);
        return df.mapPartitions(f, Encoders.row(schema));
    }

    /**
     * This JVM's client counters, summed over its clients: {@code rows_sent}, {@code
     * rows_scored}, {@code requests}, {@code retries}, {@code failed_batches}, {@code
     * bytes_sent}, {@code ejections}.
     *
     * @return the counters by name
     */
    public static Map<String, Long> stats() {
        long[] v = Native.stats();
        String[] names = {"rows_sent", "rows_scored", "requests", "retries", "failed_batches",
            "bytes_sent", "ejections"};
        Map<String, Long> out = new LinkedHashMap<>();
        for (int i = 0; i < names.length; i++) {
            out.put(names[i], v[i]);
        }
        return out;
    }

    /**
     * The model version this JVM's clients' answers came from: the one a {@link Builder#modelVersion}
     * asked for, else the first answer's; null before any answer.
     *
     * @return the version, or null
     */
    public static String pinnedVersion() {
        String version = Native.pinned().split("\n", -1)[0];
        return version.isEmpty() ? null : version;
    }

    /**
     * Each server's adaptive concurrency limit now (requests in flight it gets), by scoring URL.
     *
     * @return the limits
     */
    public static Map<String, Integer> limits() {
        Map<String, Integer> out = new LinkedHashMap<>();
        String[] lines = Native.pinned().split("\n", -1);
        for (int i = 1; i < lines.length; i++) {
            int space = lines[i].indexOf(' ');
            out.put(lines[i].substring(space + 1), Integer.parseInt(lines[i].substring(0, space)));
        }
        return out;
    }

    /**
     * The version of the configured model the servers serve now (from the first that answers).
     *
     * @return the version, as {@link Builder#modelVersion} takes it
     */
    public String servedVersion() {
        return Native.servedVersion(config());
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("Scorer(");
        settings.forEach((name, value) ->
                s.append(name).append('=').append(name.equals("token") ? "***" : value).append(", "));
        return s.append("errors=").append(errors).append(')').toString();
    }

    /**
     * The value the Rust client uses for a setting, after its parsing and defaults.
     *
     * @param name the setting's name ({@code user_agent}, {@code batch_rows}, ...)
     * @return its value as text, or {@code null} when unset (a token reads {@code ***})
     */
    public String setting(String name) {
        return Native.setting(config(), name);
    }

    // For Scoring.

    long open() {
        return Native.open(config(), errors.equals("column"));
    }

    /**
     * This JVM's number for the settings, checked by the Rust client on first use (on the driver
     * at {@link Builder#build}, on each executor after deserialization).
     */
    private synchronized long config() {
        if (config == 0) {
            String[] pairs = new String[settings.size() * 2];
            int i = 0;
            for (Map.Entry<String, String> e : settings.entrySet()) {
                pairs[i++] = e.getKey();
                pairs[i++] = e.getValue();
            }
            config = Native.configure(pairs);
        }
        return config;
    }

    int batchRows() {
        String rows = settings.get("batch_rows");
        return rows != null ? Integer.parseInt(rows.trim()) : Native.defaultBatchRows();
    }

    boolean errorsAsColumn() {
        return errors.equals("column");
    }

    private void checkNames(String[] keep, String scoreCol) {
        Objects.requireNonNull(scoreCol, "scoreCol");
        for (String k : keepOrEmpty(keep)) {
            if (k.equals(scoreCol) || (errorsAsColumn() && k.equals(errorColumn))) {
                throw new IllegalArgumentException(
                        "the keep column " + k + " has the score or error column's name");
            }
        }
    }

    static String[] keepOrEmpty(String[] keep) {
        return keep == null ? new String[0] : keep;
    }

    static int field(StructType schema, String name) {
        for (int i = 0; i < schema.fields().length; i++) {
            if (schema.fields()[i].name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("no column " + name + " in the input (it has "
                + String.join(", ", schema.fieldNames()) + ")");
    }
}

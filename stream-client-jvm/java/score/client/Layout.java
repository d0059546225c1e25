package score.client;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.DecimalType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.collection.mutable.ArraySeq;

/**
 * Where a row's features are: several numeric columns, one array (or ML vector) column, or one
 * string column (the text of an embedding model); and the one place a row becomes float32
 * values.
 */
final class Layout {
    /** Field indices of the numeric feature columns; one index for an array or text column. */
    final int[] fields;
    final String[] names;
    /** Whether the features are one array or vector column. */
    final boolean array;
    /** Whether the feature is one string column, sent as text (Arrow utf8), not as floats. */
    final boolean text;

    private Layout(int[] fields, String[] names, boolean array, boolean text) {
        this.fields = fields;
        this.names = names;
        this.array = array;
        this.text = text;
    }

    /**
     * The layout of {@code features} in {@code schema}, by the rules the whole client shares
     * (score-protocol's {@code features}: the Rust side chooses, this side says what each column
     * holds).
     *
     * @param features the feature columns; {@code null} or empty: the only array column, else
     *     every float or double column
     * @throws IllegalArgumentException when a column is missing or not numeric
     */
    static Layout of(StructType schema, String[] features) {
        String[] wanted = features == null ? new String[0] : features;
        for (String name : wanted) {
            Scorer.field(schema, name); // a missing column named with the input's columns
        }
        StructField[] all = schema.fields();
        String[] names = new String[all.length];
        String[] kinds = new String[all.length];
        String[] types = new String[all.length];
        for (int i = 0; i < all.length; i++) {
            names[i] = all[i].name();
            kinds[i] = kind(all[i].dataType());
            types[i] = all[i].dataType().simpleString();
        }
        int[] found = Native.features(names, kinds, types, wanted);
        int[] fields = Arrays.copyOfRange(found, 1, found.length);
        String[] chosen = new String[fields.length];
        for (int i = 0; i < fields.length; i++) {
            chosen[i] = names[fields[i]];
        }
        return new Layout(fields, chosen, found[0] == 1, found[0] == 2);
    }

    /** What a column holds, in the words of {@code Native.features}. */
    private static String kind(DataType t) {
        if (t instanceof VectorUDT) {
            return "number_list";
        }
        if (t instanceof ArrayType) {
            return numeric(((ArrayType) t).elementType()) ? "number_list" : "other_list";
        }
        if (t.equals(DataTypes.FloatType) || t.equals(DataTypes.DoubleType)) {
            return "float";
        }
        if (numeric(t)) {
            return "number";
        }
        return t.equals(DataTypes.StringType) ? "text" : "other";
    }

    private static boolean numeric(DataType t) {
        return t.equals(DataTypes.FloatType) || t.equals(DataTypes.DoubleType)
                || t.equals(DataTypes.IntegerType) || t.equals(DataTypes.LongType)
                || t.equals(DataTypes.ShortType) || t.equals(DataTypes.ByteType)
                || t instanceof DecimalType;
    }

    /**
     * The number of features in {@code row}: the column count, or the array's length.
     *
     * @return the width, or -1 when the array is null
     */
    int width(Row row) {
        if (text) {
            return row.isNullAt(fields[0]) ? -1 : 1;
        }
        if (!array) {
            return fields.length;
        }
        if (row.isNullAt(fields[0])) {
            return -1;
        }
        Object v = row.get(fields[0]);
        return v instanceof Vector ? ((Vector) v).size() : row.getList(fields[0]).size();
    }

    /**
     * Writes {@code row}'s {@code columns} features to {@code out} (at its position).
     *
     * @return null, or why the row cannot be scored (then {@code out} is left where it was)
     */
    String write(Row row, FloatBuffer out, int columns) {
        int start = out.position();
        if (!array) {
            for (int i = 0; i < fields.length; i++) {
                Object v = row.get(fields[i]);
                if (v == null) {
                    out.position(start);
                    return "feature column " + names[i] + " is null";
                }
                out.put(((Number) v).floatValue());
            }
            return null;
        }
        Object v = row.get(fields[0]);
        if (v == null) {
            return "feature column " + names[0] + " is null";
        }
        if (v instanceof Vector) {
            Vector vector = (Vector) v;
            if (vector.size() != columns) {
                return widthError(vector.size(), columns);
            }
            for (int j = 0; j < columns; j++) {
                out.put((float) vector.apply(j));
            }
            return null;
        }
        // Spark hands an array column over as a mutable ArraySeq over Object[] (boxed
        // elements); read that array directly rather than through a java.util.List view.
        Object backing = v instanceof ArraySeq ? ((ArraySeq<?>) v).array() : null;
        if (backing instanceof float[]) {
            float[] values = (float[]) backing;
            if (values.length != columns) {
                return widthError(values.length, columns);
            }
            out.put(values);
            return null;
        }
        Object[] values = backing instanceof Object[] ? (Object[]) backing
                : row.getList(fields[0]).toArray();
        if (values.length != columns) {
            return widthError(values.length, columns);
        }
        for (int j = 0; j < columns; j++) {
            Object x = values[j];
            if (x == null) {
                out.position(start);
                return "feature column " + names[0] + " has a null at position " + j;
            }
            out.put(((Number) x).floatValue());
        }
        return null;
    }

    private String widthError(int got, int columns) {
        return "feature column " + names[0] + " has " + got + " values, the partition's first "
                + "row had " + columns;
    }
}

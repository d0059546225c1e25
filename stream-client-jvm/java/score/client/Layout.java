package score.client;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.DecimalType;
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
     * The layout of {@code features} in {@code schema}.
     *
     * @param features the feature columns; {@code null} or empty: the only array column, else
     *     every float or double column
     * @throws IllegalArgumentException when a column is missing or not numeric
     */
    static Layout of(StructType schema, String[] features) {
        if (features == null || features.length == 0) {
            features = guess(schema);
        }
        int[] fields = new int[features.length];
        for (int i = 0; i < features.length; i++) {
            fields[i] = Scorer.field(schema, features[i]);
        }
        DataType first = schema.fields()[fields[0]].dataType();
        if (features.length == 1 && first.equals(DataTypes.StringType)) {
            return new Layout(fields, features, false, true);
        }
        if (features.length == 1 && (first instanceof ArrayType || first instanceof VectorUDT)) {
            if (first instanceof ArrayType && !numeric(((ArrayType) first).elementType())) {
                throw new IllegalArgumentException("feature column " + features[0] + " is "
                        + first.simpleString() + "; an array column must hold numbers");
            }
            return new Layout(fields, features, true, false);
        }
        for (int i = 0; i < fields.length; i++) {
            DataType t = schema.fields()[fields[i]].dataType();
            if (!numeric(t)) {
                throw new IllegalArgumentException("feature column " + features[i] + " is "
                        + t.simpleString() + "; give numeric columns, one array column, or "
                        + "one string column for an embedding model");
            }
        }
        return new Layout(fields, features, false, false);
    }

    private static String[] guess(StructType schema) {
        List<String> arrays = new ArrayList<>();
        List<String> floats = new ArrayList<>();
        for (var f : schema.fields()) {
            if (f.dataType() instanceof ArrayType || f.dataType() instanceof VectorUDT) {
                arrays.add(f.name());
            } else if (f.dataType().equals(DataTypes.FloatType)
                    || f.dataType().equals(DataTypes.DoubleType)) {
                floats.add(f.name());
            }
        }
        if (arrays.size() == 1) {
            return arrays.toArray(new String[0]);
        }
        if (arrays.isEmpty() && !floats.isEmpty()) {
            return floats.toArray(new String[0]);
        }
        throw new IllegalArgumentException("name the feature columns: the input has "
                + arrays.size() + " array columns and " + floats.size() + " float columns");
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

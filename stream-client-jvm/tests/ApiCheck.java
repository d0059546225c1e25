import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.function.Supplier;
import score.client.ScoreException;
import score.client.Scorer;

/**
 * The Java API without Spark running (test_jvm.py runs it with plain {@code java}): each check
 * prints {@code name: outcome}, the exception's class and message for the failures it expects.
 * Argument: a URL where nothing listens.
 */
public final class ApiCheck {
    public static void main(String[] args) throws Exception {
        String nowhere = args[0];
        check("no urls", () -> Scorer.builder().build());
        check("batchRows 0", () -> Scorer.builder(nowhere).batchRows(0));
        check("inFlight -1", () -> Scorer.builder(nowhere).inFlight(-1));
        check("timeout NaN", () -> Scorer.builder(nowhere).timeoutSeconds(Double.NaN));
        check("errors ignore", () -> Scorer.builder(nowhere).errors("ignore"));
        check("bad url", () -> Scorer.builder("ftp://example").build());
        check("no server", () -> Scorer.builder(nowhere).maxAttempts(1).build().scoreColumns());
        check("unknown setting", () -> Scorer.builder(nowhere).set("user_agnet", "x").build());
        check("user agent", () -> Scorer.builder(nowhere).set("user_agent", "nightly-churn")
                .build().setting("user_agent"));

        Scorer scorer = Scorer.builder(nowhere).model("m").token("s3cret").batchRows(10).build();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(scorer);
        }
        Object back;
        try (ObjectInputStream in =
                new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            back = in.readObject();
        }
        System.out.println("serialized: " + back.toString().equals(scorer.toString()) + " "
                + back);
    }

    static void check(String name, Supplier<Object> f) {
        try {
            System.out.println(name + ": returned " + f.get());
        } catch (IllegalArgumentException | ScoreException e) {
            System.out.println(name + ": " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }
}

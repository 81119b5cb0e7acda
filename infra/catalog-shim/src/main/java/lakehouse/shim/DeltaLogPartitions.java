package lakehouse.shim;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.connector.expressions.Expressions;
import org.apache.spark.sql.connector.expressions.Transform;

/**
 * Best-effort partition columns of an existing Delta table, read from the newest {@code metaData}
 * action in its JSON commit files. Returns no partitioning when the table does not exist yet, when
 * the metadata only lives in a Parquet checkpoint, when the partition columns are not the last
 * columns of the table schema (Spark's catalog requires that order, and reordering the columns
 * would change the Delta schema on the next write), or on any error: writes then rely on the
 * Python writer keeping the partitioning of an existing table.
 */
final class DeltaLogPartitions {

  private static final int MAX_COMMITS_SCANNED = 2000;
  private static final ObjectMapper JSON = new ObjectMapper();

  private DeltaLogPartitions() {}

  static Transform[] read(String location) {
    List<String> columns = newestMetadata(location, true);
    Transform[] out = new Transform[columns.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = Expressions.identity(columns.get(i));
    }
    return out;
  }

  /**
   * All partition columns recorded in the Delta log at {@code location}, in any position; empty
   * when there is no table (or no readable JSON metadata).
   */
  static List<String> logPartitionColumns(String location) {
    return newestMetadata(location, false);
  }

  private static List<String> newestMetadata(String location, boolean requireSuffix) {
    if (location == null) {
      return List.of();
    }
    try {
      Configuration conf =
          org.apache.spark.sql.classic.SparkSession.active().sessionState().newHadoopConf();
      Path logDir = new Path(location, "_delta_log");
      FileSystem fs = logDir.getFileSystem(conf);
      if (!fs.exists(logDir)) {
        return List.of();
      }
      FileStatus[] files = fs.listStatus(logDir, p -> p.getName().matches("\\d{20}\\.json"));
      Arrays.sort(files, Comparator.comparing((FileStatus f) -> f.getPath().getName()).reversed());
      int scanned = 0;
      for (FileStatus file : files) {
        if (++scanned > MAX_COMMITS_SCANNED) {
          break;
        }
        List<String> columns = metadataPartitions(fs, file.getPath(), requireSuffix);
        if (columns != null) {
          return columns;
        }
      }
    } catch (Exception e) {
      // best effort only
    }
    return List.of();
  }

  private static List<String> metadataPartitions(FileSystem fs, Path commit, boolean requireSuffix)
      throws Exception {
    try (BufferedReader reader =
        new BufferedReader(new InputStreamReader(fs.open(commit), StandardCharsets.UTF_8))) {
      String line;
      while ((line = reader.readLine()) != null) {
        if (!line.contains("\"metaData\"")) {
          continue;
        }
        JsonNode meta = JSON.readTree(line).get("metaData");
        if (meta == null) {
          continue;
        }
        List<String> columns = new ArrayList<>();
        JsonNode parts = meta.get("partitionColumns");
        if (parts != null) {
          parts.forEach(n -> columns.add(n.asText()));
        }
        List<String> fields = new ArrayList<>();
        JsonNode schemaString = meta.get("schemaString");
        if (schemaString != null) {
          JsonNode schemaFields = JSON.readTree(schemaString.asText()).get("fields");
          if (schemaFields != null) {
            schemaFields.forEach(f -> fields.add(f.get("name").asText()));
          }
        }
        int k = columns.size();
        if (requireSuffix
            && (k > fields.size()
                || !fields.subList(fields.size() - k, fields.size()).equals(columns))) {
          return List.of();
        }
        return columns;
      }
    }
    return null;
  }
}

package lakehouse.governance

import scala.collection.mutable

import org.apache.spark.sql.catalyst.TableIdentifier
import org.apache.spark.sql.catalyst.analysis.{ResolvedIdentifier, ResolvedNamespace, ResolvedPersistentView, ResolvedTable}
import org.apache.spark.sql.catalyst.catalog.{CatalogTable, HiveTableRelation}
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression
import org.apache.spark.sql.catalyst.plans.logical.{Command, LogicalPlan, View}
import org.apache.spark.sql.catalyst.analysis.PersistedView
import org.apache.spark.sql.execution.command.CreateViewCommand
import org.apache.spark.sql.connector.catalog.Identifier
import org.apache.spark.sql.execution.datasources.{HadoopFsRelation, LogicalRelation}
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation

/** What an analyzed plan touches: the tables and views it reads, the objects its commands act on, the commands
  * it runs. Read from the plan Spark will execute, so a table is found however it was named (views, CTEs, joins,
  * subqueries, `SELECT *`). A permanent view is read with its owner's rights: the view is checked, not what it
  * reads (masks and row filters still apply inside it, they follow the user). */
final case class Access(
    reads: Set[String], // schema.table read by queries
    targets: Set[String], // schema.table (or `schema.*` for a schema) a command acts on
    commands: Seq[String], // simple class names of the commands
    pathReads: Seq[String] // relations without a catalog name (files read by path)
)

object Access {
  private val SessionCatalog = "spark_catalog"

  def name(id: TableIdentifier): String =
    (id.database.toSeq :+ id.table).mkString(".").toLowerCase

  def name(table: CatalogTable): String = name(table.identifier)

  def name(id: Identifier): String =
    (id.namespace().toSeq.filterNot(_ == SessionCatalog) :+ id.name()).mkString(".").toLowerCase

  def namespaceTarget(namespace: Seq[String]): String = (namespace :+ "*").mkString(".").toLowerCase

  /** Delta Lake's reads of a table's transaction log (its own queries while it loads a snapshot, in the thread of
    * the statement that needs it): not a client's read. */
  private def isDeltaLogRead(r: LogicalRelation): Boolean = r.relation match {
    case fs: HadoopFsRelation => fs.location.getClass.getSimpleName == "DeltaLogFileIndex"
    case _ => false
  }

  /** The catalog name of a relation node, Left(description) for a relation read by path, None for other nodes
    * (Delta's reads of transaction logs included). */
  def relationName(plan: LogicalPlan): Option[Either[String, String]] = plan match {
    case r: LogicalRelation if r.catalogTable.isEmpty && isDeltaLogRead(r) => None
    case r: LogicalRelation => Some(r.catalogTable.map(t => Right(name(t))).getOrElse(Left(r.relation.toString)))
    case r: HiveTableRelation => Some(Right(name(r.tableMeta)))
    case r: DataSourceV2Relation => Some(r.identifier.map(i => Right(name(i))).getOrElse(Left(r.table.name())))
    case _ => None
  }

  def of(plan: LogicalPlan): Access = {
    val reads = mutable.LinkedHashSet[String]()
    val targets = mutable.LinkedHashSet[String]()
    val commands = mutable.ArrayBuffer[String]()
    val paths = mutable.ArrayBuffer[String]()

    def named(value: Any): Option[String] = value match {
      case id: TableIdentifier => Some(name(id))
      case t: CatalogTable => Some(name(t))
      case r: ResolvedTable => Some(name(r.identifier))
      case r: ResolvedPersistentView => Some(name(r.identifier))
      case r: ResolvedIdentifier => Some(name(r.identifier))
      case r: ResolvedNamespace => Some(namespaceTarget(r.namespace))
      case p: LogicalPlan => relationName(p).flatMap(_.toOption)
      case Some(inner) => named(inner)
      case _ => None
    }

    def visit(p: LogicalPlan): Unit = {
      p match {
        case c: CreateViewCommand if c.viewType != PersistedView =>
          commands += c.getClass.getSimpleName // a temporary view: its name is the session's own
        case c: Command =>
          commands += c.getClass.getSimpleName
          c.productIterator.foreach(field => named(field).foreach(targets += _))
        case _ =>
      }
      p match {
        case v: View if !v.isTempView => reads += name(v.desc) // owner's rights: not descended
        case r: ResolvedTable => targets += name(r.identifier)
        case r: ResolvedPersistentView => targets += name(r.identifier)
        case r: ResolvedIdentifier => targets += name(r.identifier)
        case r: ResolvedNamespace => targets += namespaceTarget(r.namespace)
        case _ =>
          relationName(p) match {
            case Some(Right(table)) => reads += table
            case Some(Left(path)) => paths += path
            case None =>
          }
          p.children.foreach(visit)
          p.innerChildren.foreach {
            case inner: LogicalPlan => visit(inner)
            case _ =>
          }
          p.expressions.foreach(_.foreach {
            case s: SubqueryExpression => visit(s.plan)
            case _ =>
          })
      }
    }

    visit(plan)
    Access(reads.toSet -- targets, targets.toSet, commands.toSeq, paths.toSeq)
  }
}

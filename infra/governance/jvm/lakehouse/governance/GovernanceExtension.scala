package lakehouse.governance

import org.apache.hadoop.security.UserGroupInformation
import org.apache.spark.sql.{SparkSession, SparkSessionExtensions}
import org.apache.spark.sql.catalyst.expressions.{Alias, Attribute, Concat, ExprId, Expression, Literal, Lower, Or, RLike}
import org.apache.spark.sql.catalyst.plans.logical.{Filter, LocalRelation, LogicalPlan, Project}
import org.apache.spark.sql.catalyst.analysis.PersistedView
import org.apache.spark.sql.catalyst.rules.Rule
import org.apache.spark.sql.execution.command.{CreateViewCommand, SetCommand}
import org.apache.spark.sql.types.MetadataBuilder

/** The SQL endpoint's authorization layer (`spark.sql.extensions`): every statement a client runs is authorized
  * against the compiled policies (check rule), row filters and column masks are applied to every table it reads
  * (post-hoc resolution rule), and listings of schemas and tables show only what the user may read.
  *
  * The user is the client's session user (HiveServer2 runs each session's operations as that user: `doAs`). Work
  * of the endpoint's own process (outside client sessions) is not governed. */
class GovernanceExtension extends (SparkSessionExtensions => Unit) {
  override def apply(extensions: SparkSessionExtensions): Unit = {
    extensions.injectPostHocResolutionRule(session => ApplyRowFiltersAndMasks(session))
    extensions.injectPostHocResolutionRule(session => FilterListings(session))
    extensions.injectCheckRule(session => AuthorizePlan(session))
  }
}

object Governance {
  val PoliciesConf = "spark.lakehouse.governance.policies"
  val AuditDirConf = "spark.lakehouse.governance.auditDir"

  /** The client session's user, None for the endpoint's own work (its login user, outside any session). */
  def clientUser(): Option[String] = {
    val current = UserGroupInformation.getCurrentUser
    if (current == UserGroupInformation.getLoginUser) None else Some(current.getShortUserName)
  }

  /** The policy of the client session's user, None outside client sessions; refused for unknown users. */
  def policyFor(session: SparkSession): Option[UserPolicy] = clientUser().map { user =>
    AuditLog.configure(session.sparkContext.getConf.get(AuditDirConf, ""))
    policyOf(user, session.sparkContext.getConf.get(PoliciesConf, ""))
  }

  def policyOf(user: String, policiesPath: String): UserPolicy = Policies.current(policiesPath).users.getOrElse(user,
    throw new SecurityException(s"Permission denied: user [$user] has no role in the governance policies"))
}

/** Row filters and column masks on every catalog relation of the plan, for the session's user. A masked or
  * filtered relation is replaced by Project(masked columns, Filter(row filter, relation)); the Project's aliases
  * carry a marker, so a relation is governed once however often the rule meets it (views, subqueries). */
case class ApplyRowFiltersAndMasks(session: SparkSession) extends Rule[LogicalPlan] {
  private val Marker = "__lakehouse_governed"

  private def isGoverned(p: Project): Boolean = p.projectList.nonEmpty && p.projectList.forall {
    case a: Alias => a.explicitMetadata.exists(_.contains(Marker))
    case _ => false
  }

  override def apply(plan: LogicalPlan): LogicalPlan =
    if (!plan.resolved) plan // analysis fails on it anyway, with Spark's own error
    else Governance.policyFor(session).map(govern(plan, _)).getOrElse(plan)

  private def govern(plan: LogicalPlan, policy: UserPolicy): LogicalPlan = {
    val governed = plan.collectWithSubqueries {
      case p: Project if isGoverned(p) => p.child.output.map(_.exprId)
    }.flatten.toSet
    plan.transformUpWithNewOutput {
      case relation if isUngoverned(relation, governed) && needsGovernance(relation, policy) =>
        val table = Access.relationName(relation).get.toOption.get
        val wrapped = wrap(relation, table, policy)
        (wrapped, relation.output.zip(wrapped.output))
    }
  }

  private def isUngoverned(relation: LogicalPlan, governed: Set[ExprId]): Boolean =
    Access.relationName(relation).exists(_.isRight) && !relation.output.exists(a => governed.contains(a.exprId))

  private def needsGovernance(relation: LogicalPlan, policy: UserPolicy): Boolean = {
    val table = Access.relationName(relation).get.toOption.get
    policy.rowFilterOf(table).isDefined || relation.output.exists(a => policy.maskOf(table, a.name).isDefined)
  }

  private def wrap(relation: LogicalPlan, table: String, policy: UserPolicy): LogicalPlan = {
    val columns = relation.output
    val filtered = policy.rowFilterOf(table) match {
      case Some(predicate) => Filter(resolve(predicate, columns), relation)
      case None => relation
    }
    val masked = columns.map { column =>
      val value = policy.maskOf(table, column.name) match {
        case Some(template) => resolve(template.replace("{col}", quoted(column.name)), columns)
        case None => column
      }
      val metadata = new MetadataBuilder().withMetadata(column.metadata).putBoolean(Marker, true).build()
      Alias(value, column.name)(explicitMetadata = Some(metadata))
    }
    Project(masked, filtered)
  }

  private def quoted(name: String): String = "`" + name.replace("`", "``") + "`"

  /** A SQL expression of the policies resolved against the relation's columns. */
  private def resolve(sql: String, columns: Seq[Attribute]): Expression = {
    val parsed = session.sessionState.sqlParser.parseExpression(sql)
    val analyzed = session.sessionState.analyzer.execute(Project(Seq(Alias(parsed, "value")()), LocalRelation(columns)))
    analyzed match {
      case Project(Seq(Alias(expression, _)), _) if expression.resolved => expression
      case _ => throw new SecurityException(s"governance: cannot resolve the policy expression [$sql]")
    }
  }
}

/** SHOW TABLES / SHOW SCHEMAS list only what the user may read. */
case class FilterListings(session: SparkSession) extends Rule[LogicalPlan] {
  private val TableListings = Set("ShowTables", "ShowTablesCommand", "ShowTablesExtended", "ShowViews",
    "ShowViewsCommand")
  private val SchemaListings = Set("ShowNamespaces", "ShowNamespacesCommand")

  override def apply(plan: LogicalPlan): LogicalPlan = plan.getClass.getSimpleName match {
    case listing if plan.resolved && (TableListings ++ SchemaListings).contains(listing) =>
      Governance.policyFor(session).map(filtered(plan, listing, _)).getOrElse(plan)
    case _ => plan
  }

  private def filtered(plan: LogicalPlan, listing: String, policy: UserPolicy): LogicalPlan = {
    def column(name: String): Option[Attribute] = plan.output.find(_.name.equalsIgnoreCase(name))
    if (TableListings.contains(listing)) {
      val namespace = column("namespace").orElse(column("database")).get
      val table = column("tableName").orElse(column("viewName")).get
      val qualified = Lower(Concat(Seq(namespace, Literal("."), table)))
      val temporary = column("isTemporary").map(c => c: Expression).getOrElse(Literal(false))
      Filter(Or(temporary, matchesAny(qualified, policy.read.map(_.pattern()))), plan)
    } else if (plan.output.size == 1) Filter(matchesAny(Lower(plan.output.head), policy.schemas.map(_.pattern())), plan)
    else plan
  }

  private def matchesAny(value: Expression, patterns: Seq[String]): Expression =
    if (patterns.isEmpty) Literal(false) else RLike(value, Literal(patterns.mkString("(", ")|(", ")")))
}

/** Refuses a statement that reads, lists or changes anything the user's role does not allow, and records every
  * client statement (allowed or refused) in the audit log. */
case class AuthorizePlan(session: SparkSession) extends (LogicalPlan => Unit) {
  private val ViewResolutionClass = "org.apache.spark.sql.catalyst.analysis.ViewResolution$"

  // Commands a read-only role may run: the objects they name must be readable.
  private val ReadOnlyCommands = Set(
    "ShowTables", "ShowTablesCommand", "ShowTablesExtended", "ShowViews", "ShowViewsCommand", "ShowNamespaces",
    "ShowNamespacesCommand", "ShowColumns", "ShowColumnsCommand", "ShowCreateTable", "ShowCreateTableCommand",
    "ShowTableProperties", "ShowTablePropertiesCommand", "ShowFunctions", "ShowFunctionsCommand", "ShowCatalogsCommand",
    "ShowCurrentNamespaceCommand", "DescribeRelation", "DescribeTableCommand", "DescribeColumn",
    "DescribeColumnCommand", "DescribeNamespace", "DescribeDatabaseCommand", "DescribeFunction",
    "DescribeFunctionCommand", "DescribeQueryCommand", "ExplainCommand", "SetCatalogAndNamespace", "SetCommand",
    "DescribeDeltaHistory", "DescribeDeltaHistoryCommand", "DescribeDeltaDetailCommand", "CreateViewCommand")

  override def apply(plan: LogicalPlan): Unit = if (!checkingAViewBody) authorize(plan)

  /** Spark 4.1 checks a view's body on its own while it resolves the view (ViewResolution.resolve calls the
    * analyzer's checks, outside the view's analysis context). The body is authorized with the statement that reads
    * the view instead: a temporary view's body as part of it, a permanent view by its grant. */
  private def checkingAViewBody: Boolean =
    Thread.currentThread().getStackTrace.exists(_.getClassName == ViewResolutionClass)

  private def authorize(plan: LogicalPlan): Unit = Governance.policyFor(session).foreach { policy =>
    val access = Access.of(plan)
    // Delta's own queries on transaction logs (in the statement's thread) touch none of these
    if (access.reads.nonEmpty || access.targets.nonEmpty || access.commands.nonEmpty || access.pathReads.nonEmpty) {
      val refusal = refuse(plan, access, policy)
      AuditLog.statement(session, policy, access, refusal)
      refusal.foreach(reason => throw new SecurityException(reason))
    }
  }

  private def denied(policy: UserPolicy, what: String): Option[String] =
    Some(s"Permission denied: user [${policy.user}] (role ${policy.role}) may not $what")

  private def refuse(plan: LogicalPlan, access: Access, policy: UserPolicy): Option[String] = {
    val unreadable = access.reads.filterNot(policy.mayRead).toSeq.sorted
    val writing = access.commands.filterNot(ReadOnlyCommands.contains)
    if (unreadable.nonEmpty) denied(policy, s"read ${unreadable.mkString(", ")}")
    else if (access.pathReads.nonEmpty) denied(policy, s"read files by path (${access.pathReads.head})")
    else if (!policy.createViews && persistentView(plan))
      denied(policy, "create a permanent view (it would read with the creator's rights)")
    else if (writing.nonEmpty) {
      val unwritable = access.targets.filterNot(policy.mayWrite).toSeq.sorted
      if (access.targets.isEmpty) denied(policy, s"run ${writing.distinct.mkString(", ")}")
      else if (unwritable.nonEmpty) denied(policy, s"change ${unwritable.mkString(", ")}")
      else None
    } else {
      // listings of a schema (`schema.*`) or of the catalog (`*`) are filtered instead (FilterListings)
      val unlisted = access.targets.filterNot(t => t.endsWith("*") || policy.mayRead(t)).toSeq.sorted
      if (unlisted.nonEmpty) denied(policy, s"read ${unlisted.mkString(", ")}")
      else settingRefusal(plan, policy)
    }
  }

  private def persistentView(plan: LogicalPlan): Boolean = plan.exists {
    case c: CreateViewCommand => c.viewType == PersistedView
    case other => other.getClass.getSimpleName == "CreateView"
  }

  private def settingRefusal(plan: LogicalPlan, policy: UserPolicy): Option[String] = plan match {
    case SetCommand(Some((key, Some(_)))) if !policy.settings.contains(key.toLowerCase) =>
      denied(policy, s"change the setting $key")
    case _ => None
  }
}

"""What is built on our tables and views in a Postgres warehouse, read from its catalog.

Postgres refuses to drop a table or a view that other views read (and `cascade` would drop those
with it, in any schema, whoever owns them). Before one of ours is dropped, the views built on it,
directly or through others, are read here as they stand: definition, options, owner, comment,
grants (and a materialized view's indexes), so that they can be dropped in order and built again
as they were, in the same transaction. Column-level grants and comments, triggers and rules on
those views are not carried over.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field

from .access import Warehouse, literal


@dataclass
class Relation:
    """A table, view or materialized view, and what it takes to build it again."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind: 'r'/'p' table, 'v' view, 'm' materialized view
    qualified: str  # quoted: "schema"."name"
    definition: str | None
    owner: str  # quoted
    ours_to_own: bool  # owned by the role that runs the sync
    options: list[str]
    comment: str | None
    populated: bool
    reads: set[int] = field(default_factory=set)  # the oids it selects from
    grants: list[str] = field(default_factory=list)  # GRANT statements that give its privileges
    indexes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")

    @property
    def _keyword(self) -> str:
        return "materialized view" if self.kind == "m" else "view"

    def drop(self) -> str:
        return f"drop {self._keyword} {self.qualified}"  # never cascade

    def create(self) -> list[str]:
        """This view as it was: built, commented, given back to its owner, granted."""
        options = f" with ({', '.join(self.options)})" if self.options else ""
        data = " with no data" if self.kind == "m" and not self.populated else ""
        body = (self.definition or "").strip().rstrip(";")
        out = [f"create {self._keyword} {self.qualified}{options} as {body}{data}", *self.indexes]
        if self.comment is not None:
            out.append(f"comment on {self._keyword} {self.qualified} is {literal(self.comment)}")
        if not self.ours_to_own:
            out.append(f"alter {self._keyword} {self.qualified} owner to {self.owner}")
        return out + self.grants


def built_on(wh: Warehouse, schema: str, names: list[str]) -> list[Relation]:
    """The relations `names` of `schema` and every view built on them, in any schema, each after
    what it reads (create in this order, drop in the reverse)."""
    if not names:
        return []
    _, rows = wh.query(_TREE.format(schema=literal(schema), names=_literals(names)))
    found = {int(row[0]): Relation(int(row[0]), *row[1:]) for row in rows}
    oids = ", ".join(str(oid) for oid in found)
    for view, read in wh.query(_READS.format(oids=oids))[1]:
        found[int(view)].reads.add(int(read))
    for oid, privilege, grantee, grantable in wh.query(_GRANTS.format(oids=oids))[1]:
        relation = found[int(oid)]
        option = " with grant option" if grantable else ""
        relation.grants.append(
            f"grant {str(privilege).lower()} on {relation.qualified} to {grantee}{option}"
        )
    for oid, index in wh.query(_INDEXES.format(oids=oids))[1]:
        found[int(oid)].indexes.append(str(index))
    graph = graphlib.TopologicalSorter(
        {oid: {read for read in rel.reads if read in found} for oid, rel in found.items()}
    )
    return [found[oid] for oid in graph.static_order()]


def _literals(values: list[str]) -> str:
    return ", ".join(literal(value) for value in values)


_TREE = """
with recursive tree(oid) as (
    select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = {schema} and c.relname in ({names})
    union
    select r.ev_class from tree
    join pg_depend d on d.refclassid = 'pg_class'::regclass and d.refobjid = tree.oid
    join pg_rewrite r on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
    where r.ev_class <> tree.oid
)
select c.oid, n.nspname, c.relname, c.relkind::text, format('%I.%I', n.nspname, c.relname),
    case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end,
    quote_ident(pg_get_userbyid(c.relowner)),
    c.relowner = (select oid from pg_roles where rolname = current_user),
    coalesce(c.reloptions, '{{}}'::text[]), obj_description(c.oid, 'pg_class'), c.relispopulated
from tree join pg_class c on c.oid = tree.oid join pg_namespace n on n.oid = c.relnamespace
"""

_READS = """
select distinct r.ev_class, d.refobjid from pg_rewrite r
join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
    and d.refclassid = 'pg_class'::regclass
where r.ev_class in ({oids}) and d.refobjid <> r.ev_class
"""

_GRANTS = """
select c.oid, a.privilege_type,
    case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end,
    a.is_grantable
from pg_class c cross join lateral aclexplode(c.relacl) a
where c.oid in ({oids}) and a.grantee <> c.relowner
order by 1, 3, 2
"""

_INDEXES = """
select i.indrelid, pg_get_indexdef(i.indexrelid) from pg_index i
join pg_class c on c.oid = i.indrelid
where c.oid in ({oids}) and c.relkind = 'm'
"""


def grants(relations: list[Relation]) -> list[tuple[str, str]]:
    """(relation name, GRANT statement) for each privilege others hold on `relations`."""
    return [(rel.name, grant) for rel in relations for grant in rel.grants]


def names(relations: list[Relation], shown: int = 4) -> str:
    """The first few, for one line: `a.x, a.y and 3 more`."""
    labels = sorted({rel.label for rel in relations})
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more

"""Comments on a case: the staff's discussion, who wrote what when; an @username mention tells that person.

Who reads and writes them is the policy's (`policy.reads_comments`: the case's staff, never its
respondents). A comment is written once and audited with its text; it does not change the case (its
version stays), so it never conflicts with the work on the case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from ..domain import policy
from ..domain.errors import ValidationFailed
from ..models import Case, CaseComment, User
from . import audit, notifications, queries

COMMENT_MAX = 2000  # characters
PAGE_SIZE = 20
# @username: the usernames of staff (letters, digits, `.`, `_`, `-`), not inside a word or an e-mail address
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")


@dataclass(frozen=True)
class CommentRow:
    """A comment as the pages and the API show it."""

    id: int
    author_id: int
    author: str
    author_username: str
    body: str
    mentions: list
    created_at: datetime


@dataclass(frozen=True)
class CommentPage:
    items: list[CommentRow]
    total: int
    page: int
    pages: int


def mentioned(text: str) -> list[str]:
    """The usernames @mentioned in a text, in order, once each (a trailing full stop is not part of one)."""
    return list(dict.fromkeys(name.rstrip(".") for name in MENTION.findall(text)))


def add_comment(session: Session, case: Case, actor: User, body: str) -> CaseComment:
    """Add a comment to the case (audited with its text) and tell each member of staff it @mentions.

    Raises PermissionDenied (a respondent of the case, or someone outside its scope), ValidationFailed (an
    empty or too long text; a mention of nobody, or of someone who may not read the case's comments).
    """
    agg = queries.aggregate(session, case)
    view = agg.view()
    policy.require_comment(queries.actor_of(session, actor), view)
    text = (body or "").strip()
    if not text:
        raise ValidationFailed("write the comment", field="body")
    if len(text) > COMMENT_MAX:
        raise ValidationFailed("a comment may be at most 2,000 characters long", field="body")
    names = mentioned(text)
    people = list(session.exec(select(User).where(User.username.in_(names), User.active.is_(True)))) if names else []
    unknown = [n for n in names if n not in {u.username for u in people}]
    if unknown:
        raise ValidationFailed("nobody active has this username: " + ", ".join(f"@{n}" for n in unknown),
                               field="body")
    outside = [u.username for u in people if not policy.reads_comments(queries.actor_of(session, u), view)]
    if outside:
        raise ValidationFailed("only the case's staff can be mentioned, not its respondents nor anyone outside "
                               "its scope: " + ", ".join(f"@{n}" for n in outside), field="body")
    comment = CaseComment(case_id=case.id, author_id=actor.id, body=text, mentions=[u.id for u in people])
    session.add(comment)
    session.flush()
    audit.record(session, event="comment", actor=actor, case_id=case.id, from_state=case.state,
                 payload={"comment_id": comment.id, "text": text, "mentions": [u.username for u in people]})
    excerpt = text if len(text) <= 120 else text[:119] + "…"
    notifications.tell(
        session, [u.id for u in people if u.id != actor.id], case_id=case.id, kind="mention",
        key=f"mention:{comment.id}",
        zh=f"{actor.name} 在案件 {case.number} 的评论中提到了您：{excerpt}",
        en=f"{actor.name} mentioned you in a comment on case {case.number}: {excerpt}")
    return comment


def comments(session: Session, case: Case, actor, *, page: int = 1, size: int = PAGE_SIZE) -> CommentPage:
    """One page of the case's comments, oldest first (a page past the end shows the last one).

    Raises PermissionDenied unless the actor may read the case's comments.
    """
    policy.require_comment(queries.actor_of(session, actor), queries.aggregate(session, case).view())
    total = session.exec(select(func.count()).select_from(CaseComment).where(CaseComment.case_id == case.id)).one()
    pages = max(1, (total + size - 1) // size)
    page = min(max(1, page), pages)
    found = session.exec(
        select(CaseComment, User.name, User.username).join(User, User.id == CaseComment.author_id)
        .where(CaseComment.case_id == case.id).order_by(CaseComment.id).offset((page - 1) * size).limit(size)).all()
    return CommentPage(items=[CommentRow(id=c.id, author_id=c.author_id, author=name, author_username=username,
                                         body=c.body, mentions=list(c.mentions), created_at=c.created_at)
                              for c, name, username in found], total=total, page=page, pages=pages)

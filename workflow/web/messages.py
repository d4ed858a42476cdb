"""Translations of the messages the domain and the services raise, so users read them in their language.

The services speak English (their messages are also the API's); the UI looks each one up here. A message
not listed (one with variable parts) is shown as the service wrote it, after a translated heading.
"""

from __future__ import annotations

from .i18n import _l

_KNOWN = [
    _l("this respondent has already been proposed as a precedent"),
    _l("the precedent has already been approved or rejected"),
    _l("the respondent has no final outcome"),
    _l("the investigator must be named and may not be a respondent of the case"),
    _l("every respondent needs recorded facts and written findings for each of their stages"),
    _l("a reason must be given"),
    _l("the committee quorum has not been reached"),
    _l("every respondent needs an outcome carried by the voting rule"),
    _l("an outcome that differs from the recommendation needs a recorded reason"),
    _l("the committee chair must sign the determination"),
    _l("every respondent's determination letter must be issued first"),
    _l("the publicity period has not elapsed yet"),
    _l("the appeal window has not elapsed yet: a respondent may still appeal, or their letter has not been served"),
    _l("no appeal was filed"),
    _l("every appeal must be decided first"),
    _l("an appeal may never worsen the appealed outcome"),
    _l("only a final case with a liable or reduced outcome can be referred for accountability"),
    _l("the case is under legal hold and cannot be withdrawn"),
    _l("a case needs at least one loan"),
    _l("a case covers the loans of one enterprise only"),
    _l("the loan file names nobody who handled a credit stage"),
    _l("the investigator must be an existing user with the investigator role"),
    _l("a person who handled a stage of the case's loans may not investigate it"),
    _l("only the case's investigator may submit the investigation"),
    _l("votes can only be cast while the case is under review"),
    _l("only members of the deciding branch's committee may vote"),
    _l("a respondent or the investigator may not decide the case"),
    _l("appeals can only be filed during the appeal window"),
    _l("only a respondent of the case may appeal, and only for themselves"),
    _l("the grounds of the appeal are required"),
    _l("you have already filed an appeal in this case"),
    _l("appeals are decided while the case is in appeal review"),
    _l("this appeal has already been decided"),
    _l("decision must be 'upheld' or 'altered'"),
    _l("the reason for the appeal decision is required"),
    _l("the appeal panel has not reached its quorum: no single reviewer decides alone"),
    _l("no outcome has the appeal panel's majority yet"),
    _l("an altered appeal needs a different outcome"),
    _l("a reason is required"),
    _l("statements can be filed until the investigation is submitted"),
    _l("only a respondent of the case may file a statement, for themselves"),
    _l("the statement is empty"),
    _l("facts can only be recorded while the case is investigated or reviewed"),
    _l("only the case's investigator may record facts"),
    _l("the file is empty"),
    _l("the file is larger than an import accepts"),
    _l("the file has more rows than an import accepts"),
    _l("the workbook's text cells are larger than an import accepts"),
    _l("the CSV file is neither UTF-8 nor GB18030/GBK"),
    _l("the CSV file contains NUL characters"),
    _l("the file's content does not match its type"),
    _l("the respondent has no decided outcome yet"),
    _l("determination letters are issued once the case is determined"),
    _l("a correction needs a reason"),
    _l("the appeal has not been decided yet"),
    # letters, service, waivers (services/letters.py, services/cases.py)
    _l("documents cannot be rendered on this server: the Chinese letter font is missing; an administrator must "
       "run scripts/setup"),
    _l("documents cannot be signed on this server: the signing certificate cannot be read; an administrator must "
       "check LETTER_SIGNING_P12"),
    _l("letters are served once they are issued and until the case is final"),
    _l("the day of service cannot be in the future"),
    _l("give the day of service"),
    _l("your determination letter has not been served yet"),
    _l("your determination letter has not been served yet: the appeal window runs from its service"),
    _l("write that you waive your appeal"),
    _l("you have already appealed or waived your appeal in this case"),
    _l("you have waived your appeal in this case"),
    _l("an appeal can be waived during publicity and the appeal window"),
    _l("the appeal decision has not been issued"),
    _l("no respondent's final outcome is reduced or liable: nothing to refer"),
    _l("bank_name is required"),
    _l("short_name is required"),
    _l("committee_name is required"),
    _l("appeal_committee_name is required"),
    _l("the password needs at least 10 characters"),
    _l("the password is too easy to guess: avoid common passwords, words, names, dates, keyboard patterns and "
       "repeated characters"),
    _l("this action needs the administrator role"),
    _l("administrators manage only the branches and staff of their own subtree"),
    _l("the username may contain letters, digits, '.', '-' and '_' only"),
    _l("the name is required"),
    _l("the employee number is required"),
    _l("unknown language"),
    _l("you cannot remove your own administrator role or deactivate yourself"),
    _l("the current password is wrong"),
    _l("the code may contain letters, digits, '-' and '_' only (at most 32)"),
    _l("an outlet cannot have branches below it"),
    _l("you cannot deactivate your own branch"),
    _l("only head-office administrators change bank-wide settings"),
    _l("a note saying why is required"),
    _l("a respondent may not vote on their own case"),
    _l("the case's investigator may not vote on it"),
    _l("a member who handled a stage of the case's loans must recuse"),
    _l("a respondent may not review appeals in their own case"),
    _l("the original deciders may not review the appeal"),
    _l("the case's investigator may not review its appeals"),
    _l("Only a head-office administrator may grant or remove the bank-wide auditor role."),
    _l("An internal auditor may not also sit on the committee, investigate or review appeals: internal audit "
       "stays independent of the work it audits."),
    # 督办 (services/cases.py urge, domain/policy.py)
    _l("only a case still being determined can be urged"),
    _l("write what you urge"),
    _l("the message may be at most 400 characters long"),
    _l("only an overdue step, or a case near or past its one-year limit, can be urged"),
    _l("nobody holds the case's current step: assign it first"),
    _l("Only a committee chair of the case's branch or a branch above it, or a head-office administrator, may "
       "urge a step."),
    # maker-checker for rule sets (services/rulesets.py, domain/policy.py)
    _l("only head-office administrators change bank-wide settings"),
    _l("A second head-office administrator must approve a rule set: its author and its last editor may not "
       "approve or reject it."),
    _l("Only a head-office administrator may run the deadline timer."),
    # the right to be heard (domain/hearing.py)
    _l("the respondents' statements are awaited until their deadlines"),
    _l("a statement has been filed: it stands, so there is nothing to decline"),
    _l("statements can be filed or declined until the investigation is submitted"),
    _l("the note may be at most 500 characters long"),
    # background jobs (services/background.py)
    _l("no determined case of this committee awaits its letters"),
    _l("only a failed or stalled job can be run again"),
    # a year's calendar schedule (services/holidays.py)
    _l("enter the year of the schedule"),
    # NPL intake (services/intake.py)
    _l("say why no case is opened"),
    _l("no loan of this enterprise awaits a case"),
    # stand-ins (services/stand_ins.py, domain/policy.py)
    _l("the period ends before it starts"),
    _l("the period has already ended"),
    _l("say why you name a stand-in"),
    _l("the reason may be at most 500 characters long"),
    _l("you have already named a stand-in for part of this period: revoke it first"),
    _l("this stand-in has already been revoked"),
    _l("Only a committee member or chair names a stand-in, for their own seat."),
    _l("A stand-in acts only for the person who named them and may not pass it on."),
    _l("You cannot be your own stand-in."),
    _l("A stand-in must be an active member of staff of your own branch."),
    _l("An internal auditor may not stand in on the committee: internal audit stays independent of the work it "
       "audits."),
    _l("That person has named a stand-in of their own for part of this period: a stand-in is never passed on."),
    _l("Only the person who named a stand-in, or an administrator of their branch, may revoke it."),
    _l("You are not this person's stand-in today."),
    _l("Only the deciding branch's committee may do this."),
    # notifications (services/accounts.py, services/outbox.py, domain/policy.py)
    _l("this is not a mail address"),
    _l("an inactive user cannot be invited: make them active first"),
    _l("there is no open invitation to revoke"),
    _l("The bank's policy is that staff set their own passwords from an invitation: send an invitation instead of "
       "typing a password."),
    _l("the robot's address must be an http(s) URL, e.g. https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"),
    _l("only a failed delivery can be sent again"),
    _l("Only a head-office administrator may see and resend failed notification deliveries."),
    # what a case awaits from the person, and why (domain/waiting.py AWAITED and the steps' `why`)
    _l("File your statement"),
    _l("Investigate and submit"),
    _l("Assign the investigator"),
    _l("Vote"),
    _l("Make the determination"),
    _l("Issue the determination letters"),
    _l("Start publicity"),
    _l("Acknowledge the determination letter"),
    _l("Appeal or waive your appeal"),
    _l("Review the appeals"),
    _l("Refer for accountability"),
    _l("Close the case"),
    _l("End publicity"),
    _l("Close the appeal window"),
    _l("The determination is final and some outcome is reduced or liable: refer it for accountability."),
    _l("The determination is final and every respondent is exempt: close the case."),
    _l("The case is referred for accountability: close it."),
    _l("Its period has run out: only an administrator moves the case on."),
    # comments on a case (services/comments.py, domain/policy.py)
    _l("write the comment"),
    _l("a comment may be at most 2,000 characters long"),
    _l("nobody active has this username"),
    _l("only the case's staff can be mentioned, not its respondents nor anyone outside its scope"),
    _l("Comments on a case are the staff's: a respondent of the case neither reads nor writes them."),
    # audit exports (services/export.py)
    _l("every export needs a stated reason (it is recorded in the access log)"),
    _l("the branch is not one of those in your scope: choose it from the list"),
    _l("the reason is longer than 500 characters"),
    _l("only internal auditors may export records"),
    _l("Only an administrator whose scope covers the case records the sanctions applied."),
    _l("Only head-office administrators and internal auditors export the HR list."),
    _l("sanctions are recorded once the case is determined"),
    _l("choose the person whose sanctions you record"),
    _l("an exempt outcome carries no sanction: nothing to record"),
    _l("the points deducted must be a whole number"),
    _l("the points deducted must be between 0 and 100"),
    _l("unknown sanction type"),
    _l("the amount deducted must be in yuan with at most two decimals"),
    _l("the amount deducted is too large"),
    _l("say in which month the amount is deducted"),
    _l("record at least one sanction: points, a sanction type or an amount"),
    _l("the month must be given as YYYY-MM"),
    _l("only respondents whose final outcome is reduced or liable can be referred"),
    _l("the recipient department may be at most 100 characters long"),
    _l("the reference may be at most 100 characters long"),
    _l("the matters referred may be at most 2,000 characters long"),
    _l("say why you export the HR list"),
]
KNOWN = {m._args[0]: m for m in _KNOWN}  # msgid -> lazy translation


def translate(message: str) -> str:
    """The message in the UI language when it is a known one, else as given.

    A message "HEAD: DETAIL" whose head is known (a guard's `states.Detailed`: names and dates after the
    colon) is translated in its head and keeps its detail.
    """
    known = KNOWN.get(message)
    if known is not None:
        return str(known)
    head, sep, detail = message.partition(": ")
    known = KNOWN.get(head) if sep else None
    return str(_l("%(reason)s: %(detail)s", reason=str(known), detail=detail)) if known is not None else message

"""The page frame every console page shares: navigation, language, sign-out, the CSP-clean head.

Chinese first: labels are written in English in the code and looked up in `ZH`; a session
switches to English at `/console/lang/en`. A label missing from `ZH` shows in English rather
than breaking the page.
"""

from __future__ import annotations

from aiohttp import web

from hub.console.auth import SESSION_KEY
from hub.console.html import Child, Html, h, hidden

ZH: dict[str, str] = {
    "govhub console": "政务数据交换平台控制台",
    "Audit": "审计",
    "Office": "办公室",
    "Directory": "资源目录",
    "Sign out": "退出",
    "Signed in as": "当前身份",
    "Sign in": "登录",
    "Latest checkpoint": "最新检查点",
    "Tree size": "树大小",
    "Root hash": "根哈希",
    "Witness cosignatures": "见证人联署",
    "Witness": "见证人",
    "Signed at": "签署时间",
    "Age": "时效",
    "Search the log": "检索日志",
    "Participant": "参与方",
    "Type": "类型",
    "Since": "起始时间",
    "Until": "截止时间",
    "Event id": "事件编号",
    "Search": "检索",
    "Leaf": "叶",
    "Event time": "事件时间",
    "Source": "发送方",
    "Verdict": "结论",
    "Event": "事件",
    "Fields": "字段",
    "Field": "字段",
    "Value": "值",
    "Inclusion proof": "包含证明",
    "Verify in this browser": "在本浏览器中验证",
    "Consistency": "一致性",
    "Old size": "旧树大小",
    "New size": "新树大小",
    "Evidence bundle": "证据包",
    "Download evidence bundle": "下载证据包",
    "Log key": "日志公钥",
    "Inbox": "收文",
    "Register": "收发文登记",
    "Send a document": "发文",
    "Title": "标题",
    "Document number": "发文字号",
    "Recipients": "收文单位",
    "Deadline": "办理期限",
    "Urgency": "紧急程度",
    "Classification": "密级",
    "File": "文件",
    "Send": "发送",
    "From": "发文单位",
    "State": "状态",
    "Status": "办理状态",
    "Recipient": "收文单位",
    "Since when": "时间",
    "Receipts": "回执",
    "Accept": "签收",
    "Reject": "退回",
    "Reason": "理由",
    "Recall": "撤回",
    "Quarantine": "隔离区",
    "Stored at": "入库时间",
    "Subject": "主题",
    "Detail": "说明",
    "Adapter": "适配器",
    "Record": "记录",
    "Nothing is quarantined.": "隔离区为空。",
    "Recalled": "已撤回",
    "Overdue": "已逾期",
    "Direction": "方向",
    "Resource directory": "政务信息资源目录",
    "Code": "资源代码",
    "Provider": "提供方",
    "Sharing": "共享类型",
    "Score": "相关度",
    "Request access": "申请共享",
    "Purpose": "用途",
    "Data items": "数据项",
    "Requests": "共享申请",
    "Request": "申请",
    "Requester": "申请方",
    "Grant": "同意",
    "Deny": "拒绝",
    "Grant until": "有效期至",
    "Abstract": "摘要",
    "Version": "版本",
    "Keywords": "关键词",
    "Done": "已完成",
    "Error": "错误",
    "Not found": "未找到",
}


def lang(request: web.Request) -> str:
    """The session's language (`zh` unless switched)."""
    session = request.get(SESSION_KEY)
    return session.lang if session is not None else "zh"


def t(request: web.Request, label: str) -> str:
    """A label in the page's language."""
    return ZH.get(label, label) if lang(request) == "zh" else label


def page(request: web.Request, title: str, *body: Child, status: int = 200) -> web.Response:
    """A whole console page: head (styles and scripts from /console/static only), nav, body."""
    session = request.get(SESSION_KEY)
    nav: list[Child] = []
    if session is not None:
        nav = [
            h("a", {"href": "/console/audit"}, t(request, "Audit")),
            h("a", {"href": "/console/office"}, t(request, "Office")),
            h("a", {"href": "/console/directory"}, t(request, "Directory")),
            h("a", {"href": "/console/quarantine"}, t(request, "Quarantine")),
            h(
                "span",
                {"class": "who"},
                t(request, "Signed in as"),
                " ",
                h("b", {"id": "who"}, session.participant),
            ),
            h(
                "a",
                {"href": "/console/lang/" + ("en" if session.lang == "zh" else "zh")},
                "English" if session.lang == "zh" else "中文",
            ),
            h(
                "form",
                {"method": "post", "action": "/console/logout", "class": "inline"},
                hidden("csrf", session.csrf),
                h("button", {"type": "submit"}, t(request, "Sign out")),
            ),
        ]
    doc = Html("<!DOCTYPE html>") + h(
        "html",
        {"lang": "zh-CN" if lang(request) == "zh" else "en"},
        h(
            "head",
            None,
            h("meta", {"charset": "utf-8"}),
            h("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
            h("title", None, f"{title} · {t(request, 'govhub console')}"),
            h("link", {"rel": "stylesheet", "href": "/console/static/console.css"}),
            h("script", {"src": "/console/static/verify.js", "defer": True}),
        ),
        h(
            "body",
            None,
            h("header", None, h("strong", None, t(request, "govhub console")), h("nav", None, nav)),
            h("main", None, h("h1", None, title), body),
        ),
    )
    return web.Response(text=str(doc), status=status, content_type="text/html", charset="utf-8")


def problem(request: web.Request, message: str, status: int = 400) -> web.Response:
    """An error page: the one sentence the service raised, as text."""
    return page(request, t(request, "Error"), h("p", {"class": "error"}, message), status=status)

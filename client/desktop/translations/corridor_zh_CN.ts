<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>ChatView</name>
    <message>
        <source>Group info</source>
        <translation>群信息</translation>
    </message>
    <message>
        <source>Type a message — Enter sends, Shift+Enter adds a line; drop files here</source>
        <translation>输入消息，Enter 发送，Shift+Enter 换行；可将文件拖到此处</translation>
    </message>
    <message>
        <source>(message recalled)</source>
        <translation>（消息已撤回）</translation>
    </message>
    <message>
        <source>(edited)</source>
        <translation>（已编辑）</translation>
    </message>
    <message>
        <source>sending</source>
        <translation>发送中</translation>
    </message>
    <message>
        <source>sent</source>
        <translation>已发送</translation>
    </message>
    <message>
        <source>delivered</source>
        <translation>已送达</translation>
    </message>
    <message>
        <source>read</source>
        <translation>已读</translation>
    </message>
    <message>
        <source>not sent</source>
        <translation>未发送</translation>
    </message>
</context>
<context>
    <name>EnrollDialog</name>
    <message>
        <source>Welcome to Corridor</source>
        <translation>欢迎使用 Corridor</translation>
    </message>
    <message>
        <source>Paste the invite your IT department sent you, then choose your password.</source>
        <translation>请粘贴 IT 部门发给您的邀请链接，然后设置密码。</translation>
    </message>
    <message>
        <source>Look again</source>
        <translation>重新查找</translation>
    </message>
    <message>
        <source>Servers on this network</source>
        <translation>本网络中的服务器</translation>
    </message>
    <message>
        <source>Invite</source>
        <translation>邀请链接</translation>
    </message>
    <message>
        <source>New password</source>
        <translation>新密码</translation>
    </message>
    <message>
        <source>Password again</source>
        <translation>确认密码</translation>
    </message>
    <message>
        <source>This computer&apos;s name</source>
        <translation>本机名称</translation>
    </message>
    <message>
        <source>Enroll</source>
        <translation>注册</translation>
    </message>
    <message>
        <source>(none found — the invite&apos;s address will be used)</source>
        <translation>（未找到，将使用邀请链接中的地址）</translation>
    </message>
    <message>
        <source>matches the invite</source>
        <translation>与邀请链接相符</translation>
    </message>
    <message>
        <source>The two passwords differ.</source>
        <translation>两次输入的密码不一致。</translation>
    </message>
    <message>
        <source>Enrolling…</source>
        <translation>正在注册…</translation>
    </message>
</context>
<context>
    <name>Files</name>
    <message>
        <source>Downloading %s…</source>
        <translation>正在下载 %s…</translation>
    </message>
    <message>
        <source>Saved %s</source>
        <translation>已保存到 %s</translation>
    </message>
</context>
<context>
    <name>GroupInfoDialog</name>
    <message>
        <source>Group: %s</source>
        <translation>群聊：%s</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>群名称</translation>
    </message>
    <message>
        <source>(none)</source>
        <translation>（无）</translation>
    </message>
    <message>
        <source>Announcement</source>
        <translation>群公告</translation>
    </message>
    <message>
        <source>Welcome</source>
        <translation>入群欢迎语</translation>
    </message>
    <message>
        <source>Owner</source>
        <translation>群主</translation>
    </message>
    <message>
        <source> (owner)</source>
        <translation>（群主）</translation>
    </message>
    <message>
        <source> (admin)</source>
        <translation>（管理员）</translation>
    </message>
    <message>
        <source>Members (%d)</source>
        <translation>群成员（%d）</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Chats</source>
        <translation>消息</translation>
    </message>
    <message>
        <source>Contacts</source>
        <translation>通讯录</translation>
    </message>
    <message>
        <source>Notices</source>
        <translation>公告</translation>
    </message>
    <message>
        <source>Choose a colleague in Contacts, or a conversation in Chats.</source>
        <translation>在“通讯录”中选择同事，或在“消息”中选择会话。</translation>
    </message>
    <message>
        <source>&amp;Settings</source>
        <translation>设置(&amp;S)</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>语言</translation>
    </message>
    <message>
        <source>System language</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <source>Quit</source>
        <translation>退出</translation>
    </message>
    <message>
        <source>Connecting…</source>
        <translation>正在连接…</translation>
    </message>
    <message>
        <source>Connected as %s</source>
        <translation>已连接：%s</translation>
    </message>
    <message>
        <source>Offline — reconnecting</source>
        <translation>离线 — 正在重新连接</translation>
    </message>
    <message>
        <source>Signed out</source>
        <translation>已退出登录</translation>
    </message>
    <message>
        <source>The server refused this device: %s</source>
        <translation>服务器拒绝了此设备：%s</translation>
    </message>
    <message>
        <source>(message recalled)</source>
        <translation>（消息已撤回）</translation>
    </message>
    <message>
        <source>Notice: %s</source>
        <translation>公告：%s</translation>
    </message>
</context>
<context>
    <name>OrgTreeView</name>
    <message>
        <source>Search people (name, pinyin, title)</source>
        <translation>搜索同事（姓名、拼音、职务）</translation>
    </message>
    <message>
        <source>%s (a bot: a program answers)</source>
        <translation>%s（机器人：由程序回复）</translation>
    </message>
    <message>
        <source>Not in a department</source>
        <translation>未分配部门</translation>
    </message>
</context>
<context>
    <name>PeerStatus</name>
    <message>
        <source>online</source>
        <translation>在线</translation>
    </message>
    <message>
        <source>away</source>
        <translation>离开</translation>
    </message>
    <message>
        <source>busy</source>
        <translation>忙碌</translation>
    </message>
    <message>
        <source>on a break</source>
        <translation>休息中</translation>
    </message>
    <message>
        <source>offline</source>
        <translation>离线</translation>
    </message>
    <message>
        <source>typing…</source>
        <translation>正在输入…</translation>
    </message>
</context>
<context>
    <name>QuietHoursDialog</name>
    <message>
        <source>Quiet hours</source>
        <translation>免打扰时段</translation>
    </message>
    <message>
        <source>Every day, be on a break</source>
        <translation>每天在此时段设为休息中</translation>
    </message>
    <message>
        <source>From</source>
        <translation>开始</translation>
    </message>
    <message>
        <source>Until</source>
        <translation>结束</translation>
    </message>
</context>
<context>
    <name>StatusToolbar</name>
    <message>
        <source>Status</source>
        <translation>状态</translation>
    </message>
    <message>
        <source>My status</source>
        <translation>我的状态</translation>
    </message>
    <message>
        <source>Online</source>
        <translation>在线</translation>
    </message>
    <message>
        <source>Away</source>
        <translation>离开</translation>
    </message>
    <message>
        <source>Busy</source>
        <translation>忙碌</translation>
    </message>
    <message>
        <source>On a break</source>
        <translation>休息中</translation>
    </message>
    <message>
        <source>Appear offline</source>
        <translation>隐身</translation>
    </message>
    <message>
        <source>Quiet hours…</source>
        <translation>免打扰时段…</translation>
    </message>
</context>
<context>
    <name>Tray</name>
    <message>
        <source>Open Corridor</source>
        <translation>打开 Corridor</translation>
    </message>
    <message>
        <source>Quit</source>
        <translation>退出</translation>
    </message>
    <message numerus="yes">
        <source>Corridor — %n unread</source>
        <translation>
            <numerusform>Corridor — %n 条未读</numerusform>
        </translation>
    </message>
</context>
</TS>

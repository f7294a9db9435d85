"""Chinese text the world is written in: regions, employers, addresses, transfer remarks and complaints.

Ordinary complaints are varied and specific. Proxy rights-defence agents' complaints come from a template
with slots (reason, grievance, demand, threat), so one agent's complaints are near-duplicates that carry
the lures the industry guides list (停息挂账, 征信修复, 全额退款, 债务清零, ...). Remarks include the phrases
each scam script makes victims type, and ordinary remarks that happen to share words with them (a refund
between friends, a rent deposit), because real traffic does.
"""

from __future__ import annotations

import numpy as np

#: (province, share of the population, a city, districts)
REGIONS: tuple[tuple[str, float, str, tuple[str, ...]], ...] = (
    ("广东", 0.089, "深圳市", ("南山区", "福田区", "宝安区", "龙岗区")),
    ("山东", 0.072, "济南市", ("历下区", "市中区", "槐荫区")),
    ("河南", 0.070, "郑州市", ("金水区", "中原区", "二七区")),
    ("江苏", 0.060, "南京市", ("鼓楼区", "玄武区", "江宁区")),
    ("四川", 0.059, "成都市", ("锦江区", "武侯区", "青羊区", "成华区")),
    ("河北", 0.053, "石家庄市", ("长安区", "桥西区", "裕华区")),
    ("湖南", 0.047, "长沙市", ("岳麓区", "芙蓉区", "雨花区")),
    ("浙江", 0.046, "杭州市", ("西湖区", "上城区", "余杭区", "滨江区")),
    ("安徽", 0.043, "合肥市", ("蜀山区", "包河区", "庐阳区")),
    ("湖北", 0.041, "武汉市", ("武昌区", "洪山区", "江汉区")),
    ("广西", 0.036, "南宁市", ("青秀区", "兴宁区", "西乡塘区")),
    ("云南", 0.033, "昆明市", ("五华区", "盘龙区", "官渡区")),
    ("江西", 0.032, "南昌市", ("东湖区", "西湖区", "红谷滩区")),
    ("辽宁", 0.030, "沈阳市", ("和平区", "沈河区", "皇姑区")),
    ("福建", 0.029, "福州市", ("鼓楼区", "台江区", "仓山区")),
    ("陕西", 0.028, "西安市", ("雁塔区", "碑林区", "未央区")),
    ("贵州", 0.027, "贵阳市", ("南明区", "云岩区", "观山湖区")),
    ("山西", 0.024, "太原市", ("小店区", "迎泽区", "杏花岭区")),
    ("重庆", 0.023, "重庆市", ("渝中区", "江北区", "九龙坡区")),
    ("黑龙江", 0.022, "哈尔滨市", ("南岗区", "道里区", "香坊区")),
    ("新疆", 0.018, "乌鲁木齐市", ("天山区", "沙依巴克区")),
    ("上海", 0.017, "上海市", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    ("甘肃", 0.017, "兰州市", ("城关区", "七里河区")),
    ("内蒙古", 0.017, "呼和浩特市", ("新城区", "赛罕区")),
    ("吉林", 0.017, "长春市", ("朝阳区", "南关区", "宽城区")),
    ("北京", 0.015, "北京市", ("朝阳区", "海淀区", "丰台区", "西城区")),
    ("天津", 0.010, "天津市", ("和平区", "河西区", "南开区")),
    ("海南", 0.007, "海口市", ("龙华区", "美兰区")),
    ("宁夏", 0.005, "银川市", ("兴庆区", "金凤区")),
    ("青海", 0.004, "西宁市", ("城中区", "城西区")),
    ("西藏", 0.003, "拉萨市", ("城关区",)),
)
REGION_WEIGHTS = np.array([r[1] for r in REGIONS]) / sum(r[1] for r in REGIONS)

_ROADS = ("人民路", "解放路", "建设路", "中山路", "和平路", "长江路")
_ROADS += ("新华路", "幸福路", "朝阳路", "文化路", "科技路", "东风路")
_FIRMS_A = ("华", "中", "新", "盛", "恒", "鑫", "博", "天", "宏", "嘉", "瑞", "金", "信", "德", "隆", "汇")
_FIRMS_B = ("科技", "贸易", "建设", "物流", "餐饮", "电子", "商贸", "医疗", "教育", "制造", "传媒", "服务")
_FIRMS_C = ("有限公司", "股份有限公司", "集团有限公司")


def employer_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct company names, each placed in a city."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        region = REGIONS[int(rng.choice(len(REGIONS), p=REGION_WEIGHTS))]
        a, b = rng.choice(_FIRMS_A, 2, replace=False)
        name = f"{region[2].removesuffix('市')}{a}{b}{rng.choice(_FIRMS_B)}{rng.choice(_FIRMS_C)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def address(rng: np.random.Generator, region: int) -> str:
    _province, _share, city, districts = REGIONS[region]
    district = districts[int(rng.integers(len(districts)))]
    road = _ROADS[int(rng.integers(len(_ROADS)))]
    number, building, room = int(rng.integers(1, 400)), int(rng.integers(1, 30)), int(rng.integers(101, 2800))
    return f"{city}{district}{road}{number}号{building}栋{room}室"


#: remarks people write on transfers to friends, family, landlords and sellers (weights are relative)
LEGIT_REMARKS: tuple[tuple[str, float], ...] = (
    ("午饭", 8),
    ("晚饭AA", 6),
    ("房租", 5),
    ("还钱", 8),
    ("红包", 10),
    ("生活费", 5),
    ("车费", 3),
    ("水电费", 3),
    ("份子钱", 2),
    ("借你的", 3),
    ("货款", 4),
    ("谢谢", 4),
    ("生日快乐", 2),
    ("奶茶", 3),
    ("电影票", 2),
    ("押金", 1.5),
    ("退款", 0.6),  # a friend returns money: shares a word with the customer-service refund script
    ("理财的钱", 0.3),  # family money for an investment: shares a word with the investment script
    ("房租保证金", 0.3),  # a rent deposit: shares a word with the fake-loan script
    ("跑腿任务费", 0.2),  # an errand: shares a word with the order-brushing script
)

#: remarks victims are told to write (or write themselves), per scam script
SCRIPT_REMARKS: dict[str, tuple[str, ...]] = {
    "police_impersonation": ("转到安全账户", "安全账户", "资金清查", "配合调查"),
    "investment": ("投资款", "理财入金", "充值", "投资"),
    "fake_loan_fee": ("解冻金", "保证金", "贷款解冻", "验资"),
    "fake_customer_service": ("退款", "客服退款", "注销会员", "理赔"),
    "order_brushing": ("刷单任务", "返利", "做任务", "垫付"),
}
SCRIPTS: tuple[str, ...] = tuple(SCRIPT_REMARKS)

#: remarks the victims of each script write when they do not name it (fraudsters coach them)
COACHED_REMARKS: tuple[str, ...] = ("还款", "货款", "借款", "生活费", "往来款")

FEE_REMARKS: tuple[str, ...] = ("服务费", "手续费", "咨询费", "中介费", "好处费")

_LEGIT_COMPLAINTS = (
    "{when}在{where}消费时被重复扣款{amount}元，请尽快核实并退回多扣的款项。",
    "我的账户{when}出现一笔{amount}元的扣款，我没有操作过，请帮忙查一下是什么费用。",
    "{when}申请的退款到现在还没有到账，订单金额{amount}元，请尽快处理。",
    "客服电话一直打不通，{when}提交的问题到现在没有人回复，服务态度太差。",
    "还款日{when}已经按时还款{amount}元，系统却显示逾期，请核实并更正记录。",
    "借款合同上写的利率和实际扣的利息不一致，{when}多收了{amount}元，请解释。",
    "{when}绑定银行卡一直失败，提示信息看不懂，希望改进流程。",
    "App在{when}更新后无法登录，验证码收不到，影响正常使用。",
    "{where}的商家收款后不发货，金额{amount}元，请平台介入处理。",
    "提前还款为什么还要收{amount}元手续费？合同里没有看到这个条款。",
)
_WHEN = ("上周", "昨天", "本月初", "上个月", "前天", "三天前", "上周五")
_WHERE = ("超市", "便利店", "网上商城", "外卖平台", "加油站", "电影院", "药店")

_AGENT_OPENINGS = ("本人", "我", "本人系贵司借款人，")
_AGENT_REASONS = ("因疫情失业", "因生病住院", "因家庭突发变故", "因收入大幅下降", "因生意失败", "因车祸受伤")
_AGENT_GRIEVANCES = (
    "贵司存在暴力催收行为，严重影响本人及家人正常生活",
    "贵司收取的息费远超法律规定上限，属于高利贷",
    "贵司未经本人授权查询征信并上报逾期记录",
    "贵司存在砍头息和捆绑销售保险等违规行为",
    "贵司催收人员多次骚扰本人通讯录联系人",
)
_AGENT_DEMANDS: dict[str, tuple[str, ...]] = {
    "debt_relief": ("现要求停息挂账，分60期偿还本金", "现要求债务清零、减免全部息费", "要求停息挂账并减免罚息"),
    "full_refund": ("要求全额退款，退还已收取的全部利息和服务费", "要求全额退保并退还所有费用"),
    "credit_repair": ("要求立即征信修复，消除所有逾期记录", "要求征信洗白，删除不良记录"),
}
_AGENT_THREATS = (
    "否则本人将向金融监管总局、人民银行及12378投诉，并向法院起诉。",
    "否则将向银保监会和12378持续投诉，并向媒体曝光。",
    "如不处理，将采取一切合法手段维权，后果自负。",
)


def legit_complaint(rng: np.random.Generator, amount_yuan: int) -> str:
    template = _LEGIT_COMPLAINTS[int(rng.integers(len(_LEGIT_COMPLAINTS)))]
    return template.format(
        when=_WHEN[int(rng.integers(len(_WHEN)))], where=_WHERE[int(rng.integers(len(_WHERE)))], amount=amount_yuan
    )


class AgentTemplate:
    """One proxy rights-defence agent's complaint template: most slots fixed for the agent, the hardship, one
    of two grievances and the amount varied per customer, so that one agent's complaints are about 90 %
    alike (institutions report over 90 % similar materials across customers)."""

    def __init__(self, rng: np.random.Generator, demand: str) -> None:
        self.demand = demand
        self.opening = _AGENT_OPENINGS[int(rng.integers(len(_AGENT_OPENINGS)))]
        self.reasons = [str(r) for r in rng.choice(_AGENT_REASONS, 3, replace=False)]
        self.grievances = [str(g) for g in rng.choice(_AGENT_GRIEVANCES, 2, replace=False)]
        self.threat = _AGENT_THREATS[int(rng.integers(len(_AGENT_THREATS)))]
        self.demand_text = str(rng.choice(_AGENT_DEMANDS[demand]))

    def render(self, rng: np.random.Generator, amount_yuan: int) -> str:
        reason = self.reasons[int(rng.integers(len(self.reasons)))]
        grievance = self.grievances[int(rng.integers(len(self.grievances)))]
        demand = self.demand_text
        return f"{self.opening}{reason}，无力偿还贵司借款{amount_yuan}元。{grievance}。{demand}，{self.threat}"
